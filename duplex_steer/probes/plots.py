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
from .inertia import OnsetInertia  # noqa: E402

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
