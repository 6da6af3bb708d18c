"""Figures of affinities and inertia (matplotlib, Agg backend; PNG files).

Every figure names the model; a random-weight model's figures carry the pipeline-check caveat in red.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..engine.model import PIPELINE_CHECK_NOTE  # noqa: E402
from .affinity import AffinityResult  # noqa: E402
from .inertia import OnsetInertia, OnsetWindows  # noqa: E402

USER_COLOR, MODEL_COLOR = "tab:orange", "tab:blue"
GEN_COLOR, PERC_COLOR = "tab:purple", "tab:green"


def _caption(fig, label: str, is_random: bool) -> None:
    model = label.split(" - ")[0] if is_random else label
    lines = [f"model: {model}"]
    if is_random:
        lines.append(f"CAVEAT: {PIPELINE_CHECK_NOTE}")
    fig.text(0.01, 0.01, "\n".join(textwrap.fill(x, 150) for x in lines), fontsize=8,
             color="firebrick" if is_random else "0.3", va="bottom", ha="left")


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_heatmaps(result: AffinityResult, path: str | Path, item: int = 0) -> Path:
    """S_gen and S_perc as layer x time images, band edges and onsets marked."""
    T = result.frames
    seconds = T / result.frame_rate
    fig, axes = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    lo, hi = result.band
    for ax, values, name in ((axes[0], result.S_gen[item], "S_gen (generation affinity)"),
                             (axes[1], result.S_perc[item], "S_perc (perception affinity)")):
        img = np.ma.masked_invalid(values.T)
        im = ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                       extent=(0, seconds, -0.5, len(result.layers) - 0.5))
        ax.set_yticks(range(len(result.layers)), [str(x) for x in result.layers])
        if len(result.layers) > 16:
            for lbl in ax.get_yticklabels()[1::2]:
                lbl.set_visible(False)
        ax.set_ylabel("layer")
        lens = ", ".join(result.lenses.get("gen", [])) if "gen" in name else result.lenses.get("perc", "")
        ax.set_title(f"{name}; lens: {lens}", fontsize=10)
        band_rows = [i for i, layer in enumerate(result.layers) if lo <= layer <= hi]
        if band_rows:
            for y in (band_rows[0] - 0.5, band_rows[-1] + 0.5):
                ax.axhline(y, color="white", lw=1, ls="--")
        for t0 in result.onsets[item]:
            ax.axvline(t0 / result.frame_rate, color="red", lw=1.2)
        fig.colorbar(im, ax=ax, label="lens probability", pad=0.01)
    axes[1].set_xlabel("time (s)")
    handles = [plt.Line2D([], [], color="0.4", ls="--", label=f"band edges, layers {lo}..{hi} (white dashes)"),
               plt.Line2D([], [], color="red", label="user onset")]
    fig.legend(handles=handles, loc="upper right", fontsize=8, ncols=2, frameon=False)
    fig.suptitle("Stream affinities per layer over time", x=0.35)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    _caption(fig, result.model_label, result.is_random)
    return _save(fig, path)


def _shade(ax, active: np.ndarray, rate: float, y0: float, y1: float, color: str, label: str) -> None:
    padded = np.concatenate([[False], np.asarray(active, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(int)))
    for i, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        ax.axvspan(a / rate, b / rate, ymin=y0, ymax=y1, color=color, alpha=0.25, lw=0, label=label if i == 0 else None)


def plot_timeline(result: AffinityResult, path: str | Path, item: int = 0) -> Path:
    """Band-averaged S_gen / S_perc over time, user and model activity shaded, onsets marked."""
    t = np.arange(result.frames) / result.frame_rate
    fig, ax = plt.subplots(figsize=(11, 4.8))
    lo, hi = result.band
    if result.activity is not None:
        _shade(ax, result.activity.user[item], result.frame_rate, 0.5, 1.0, USER_COLOR,
               f"user speaking ({result.activity.user_source})")
        _shade(ax, result.activity.model[item], result.frame_rate, 0.0, 0.5, MODEL_COLOR,
               f"model speaking ({result.activity.model_source})")
    ax.plot(t, result.band_gen[item], color=GEN_COLOR, lw=1.6, label="S_gen (band mean)")
    ax.plot(t, result.band_perc[item], color=PERC_COLOR, lw=1.6, label="S_perc (band mean)")
    for i, t0 in enumerate(result.onsets[item]):
        ax.axvline(t0 / result.frame_rate, color="red", lw=1.2, ls="--", label="user onset" if i == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"lens probability, mean of layers {lo}..{hi}")
    ax.set_xlim(0, result.frames / result.frame_rate)
    ax.set_ylim(bottom=0)
    ax.set_title("Band-averaged affinities (shading: user top half, model bottom half)", fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _caption(fig, result.model_label, result.is_random)
    return _save(fig, path)


def plot_inertia(inertias: Sequence[OnsetInertia], path: str | Path, model_label: str, is_random: bool,
                 k: int = 3) -> Path:
    """Histogram of inertia (frames from onset to perceptive take-over), listening vs speaking onsets."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    values = {c: [x.frames for x in inertias if x.condition == c and x.frames is not None]
              for c in ("listening", "speaking")}
    censored = {c: sum(x.condition == c and x.frames is None for x in inertias) for c in values}
    top = max([v for vs in values.values() for v in vs], default=10)
    never = top + 3  # where onsets that never switched are drawn
    bins = np.arange(0, never + 2) - 0.5
    for cond, color in (("listening", "tab:green"), ("speaking", "tab:red")):
        vals = values[cond]
        label = f"{cond}: {len(vals) + censored[cond]} onsets, {censored[cond]} never switched"
        ax.hist(vals + [never] * censored[cond], bins=bins, color=color, alpha=0.5, label=label)
        if vals:
            ax.axvline(np.mean(vals), color=color, ls="--", lw=1.5,
                       label=f"{cond} mean of switched: {np.mean(vals):.1f} frames")
    ticks = [t for t in ax.get_xticks() if 0 <= t <= top]
    ax.set_xticks([*ticks, never], [f"{t:g}" for t in ticks] + ["never"])
    ax.set_xlim(-1, never + 1)
    ax.set_xlabel("inertia (frames of 80 ms from user onset to perceptive take-over)")
    ax.set_ylabel("number of onsets")
    ax.set_title(f"State inertia (take-over: band S_perc > band S_gen for {k} consecutive frames)", fontsize=10)
    ax.legend(fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _caption(fig, model_label, is_random)
    return _save(fig, path)


OnsetGroup = tuple[OnsetWindows, Sequence[int | None]]
"""One condition's onset-aligned windows and the take-over lag of each of its onsets (None = censored)."""
GROUP_COLORS = {"listening": "tab:green", "speaking": "tab:red", "speaking + steered": "tab:blue"}


def _nan_mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over axis 0, ignoring NaN (NaN where nothing is finite)."""
    finite = np.isfinite(values)
    n = finite.sum(0)
    total = np.where(finite, values, 0.0).sum(0)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    var = np.where(finite, (values - mean) ** 2, 0.0).sum(0) / np.maximum(n - 1, 1)
    return mean, np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), 0.0)


def _frames_and_seconds(ax, frame_rate: float) -> None:
    ax.set_xlabel("frames from the utterance onset (80 ms each)")
    top = ax.secondary_xaxis("top", functions=(lambda f: f / frame_rate, lambda s: s * frame_rate))
    top.set_xlabel("seconds from the onset", fontsize=8)
    top.tick_params(labelsize=8)


def plot_inertia_timeline(groups: dict[str, OnsetGroup], path: str | Path, model_label: str, is_random: bool,
                          frame_rate: float = 12.5, k: int = 3, steer_span: int | None = None) -> Path:
    """Band S_gen / S_perc averaged over scenarios around the onset, one panel per condition, take-over marked."""
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 5.0), sharey=True, squeeze=False)
    handles: dict[str, object] = {}
    for ax, (name, (windows, lags)) in zip(axes[0], groups.items(), strict=True):
        x = windows.offsets
        lo, hi = windows.band
        for values, color, label in ((windows.S_gen, GEN_COLOR, "S_gen"), (windows.S_perc, PERC_COLOR, "S_perc")):
            mean, se = _nan_mean_se(windows.band_average(values))
            (line,) = ax.plot(x, mean, color=color, lw=1.8)
            ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, lw=0)
            handles[f"{label}, band mean (shading +-1 SE over scenarios)"] = line
        handles["utterance onset"] = ax.axvline(0, color="red", lw=1.2)
        if steer_span and "steered" in name:
            handles[f"steered frames 0..{steer_span - 1}"] = ax.axvspan(-0.5, steer_span - 0.5, color="gold",
                                                                        alpha=0.3, lw=0)
        seen = [v for v in lags if v is not None]
        if seen:
            m = float(np.mean(seen))
            handles["mean take-over of the onsets that took over"] = ax.axvline(m, color="black", ls="--", lw=1.4)
            took = f"mean take-over {m:+.1f} frames ({m / frame_rate:.2f} s)"
        else:
            took = "no take-over"
        ax.set_title(f"{name}: {len(windows.S_gen)} scenarios\n{took}; {len(seen)} took over, "
                     f"{len(lags) - len(seen)} censored", fontsize=9.5, color=GROUP_COLORS.get(name, "black"))
        _frames_and_seconds(ax, frame_rate)
        ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    axes[0][0].set_ylabel(f"lens probability, mean of layers {lo}..{hi}")
    fig.legend(list(handles.values()), list(handles), loc="lower center", bbox_to_anchor=(0.5, 0.08), ncols=3,
               fontsize=8, frameon=False)
    fig.suptitle(f"Around the onset: band S_perc overtaking S_gen (take-over: S_perc > S_gen for {k} frames)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.17, 1, 0.97))
    _caption(fig, model_label, is_random)
    return _save(fig, path)


def plot_heatmap_pairs(groups: dict[str, OnsetWindows], path: str | Path, model_label: str, is_random: bool,
                       frame_rate: float = 12.5) -> Path:
    """Mean S_perc - S_gen per layer (y) and frame from the onset (x), one panel per condition, centred at 0."""
    from matplotlib.colors import TwoSlopeNorm

    means = {name: _nan_mean_se(w.S_perc - w.S_gen)[0] for name, w in groups.items()}  # [W, L]
    limit = max([float(np.nanmax(np.abs(m))) for m in means.values() if np.isfinite(m).any()] + [1e-6])
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups) + 1.2, 5.0), sharey=True, squeeze=False)
    fig.subplots_adjust(bottom=0.2, top=0.8, left=0.07, right=0.9, wspace=0.08)
    im = None
    for ax, (name, w) in zip(axes[0], groups.items(), strict=True):
        x = w.offsets
        im = ax.imshow(np.ma.masked_invalid(means[name].T), aspect="auto", origin="lower", interpolation="nearest",
                       cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit),
                       extent=(x[0] - 0.5, x[-1] + 0.5, -0.5, len(w.layers) - 0.5))
        ax.set_yticks(range(len(w.layers)), [str(layer) for layer in w.layers])
        if len(w.layers) > 16:
            for lbl in ax.get_yticklabels()[1::2]:
                lbl.set_visible(False)
        rows = w.band_rows()
        if rows:
            for y in (rows[0] - 0.5, rows[-1] + 0.5):
                ax.axhline(y, color="black", lw=1, ls=":")
        ax.axvline(-0.5, color="black", lw=1.2)
        ax.set_title(f"{name} ({len(w.S_gen)} scenarios)", fontsize=10)
        _frames_and_seconds(ax, frame_rate)
    axes[0][0].set_ylabel("layer (dotted: the averaged band)")
    fig.colorbar(im, cax=fig.add_axes((0.915, 0.2, 0.012, 0.6)),
                 label="mean S_perc - S_gen\n(red: perceptive, blue: generative)")
    fig.suptitle("Layer x time around the onset (line: the onset frame's left edge)", fontsize=11)
    _caption(fig, model_label, is_random)
    return _save(fig, path)
