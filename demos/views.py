"""What the demo shows of a run: the model's words with the onset marked, the affinity timeline, the banner."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from duplex_steer import PIPELINE_CHECK_NOTE
from duplex_steer.engine.text import SPECIAL_NAMES, WORD_START
from duplex_steer.probes.affinity import AffinityResult

from .recordings import FRAME_S


def text_segments(model, tokens: Sequence[int], onset_frames: Sequence[int],
                  steered_frames: Sequence[int]) -> list[tuple[str, str | None]]:
    """The model's words frame by frame, for gr.HighlightedText: onset marker, steered frames, after onset."""
    first = min(onset_frames) if onset_frames else None
    steered = set(steered_frames)
    segments: list[tuple[str, str | None]] = []
    for frame, tok in enumerate(int(t) for t in tokens):
        if frame in onset_frames:
            segments.append((f" ▶ onset {frame * FRAME_S:.2f} s ", "user onset"))
        if tok < 0 or tok in SPECIAL_NAMES:
            continue
        word = model.tokenizer.id_to_piece(tok).replace(WORD_START, " ")
        label = "steered frames" if frame in steered else ("after onset" if first is not None and frame >= first else None)
        if segments and segments[-1][1] == label:
            segments[-1] = (segments[-1][0] + word, label)
        else:
            segments.append((word, label))
    return segments or [("(the model produced no words)", None)]


def plot_run_timeline(result: AffinityResult, item: int, steered_frames: Sequence[int], applied: bool,
                      title: str, path: str | Path) -> Path:
    """Band-mean S_gen / S_perc over time, who speaks shaded, the onset and the steering window marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from duplex_steer.probes.plots import GEN_COLOR, MODEL_COLOR, PERC_COLOR, USER_COLOR

    rate = result.frame_rate
    t = np.arange(result.frames) / rate
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for mask, (y0, y1), color, what in ((result.activity.user[item], (0.5, 1.0), USER_COLOR, "user speaking"),
                                        (result.activity.model[item], (0.0, 0.5), MODEL_COLOR, "model speaking")):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        for i, (a, b) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
            ax.axvspan(a / rate, b / rate, ymin=y0, ymax=y1, color=color, alpha=0.15, lw=0,
                       label=what if i == 0 else None)
    frames = sorted(steered_frames)
    runs = [[f] for f in frames[:1]]
    for f in frames[1:]:
        runs[-1].append(f) if f == runs[-1][-1] + 1 else runs.append([f])
    for i, run in enumerate(runs):
        if applied:
            ax.axvspan(run[0] / rate, (run[-1] + 1) / rate, color="#f59e0b", alpha=0.55, lw=0,
                       label="steering window" if i == 0 else None)
        else:
            ax.axvspan(run[0] / rate, (run[-1] + 1) / rate, fill=False, hatch="///", edgecolor="#b45309", lw=0.8,
                       label="steering window (not applied here)" if i == 0 else None)
    ax.plot(t, result.band_gen[item], color=GEN_COLOR, lw=1.6, label="S_gen (generation)")
    ax.plot(t, result.band_perc[item], color=PERC_COLOR, lw=1.6, label="S_perc (perception)")
    for i, onset in enumerate(result.onsets[item]):
        ax.axvline(onset / rate, color="red", lw=1.3, ls="--", label="user onset" if i == 0 else None)
    lo, hi = result.band
    ax.set_xlim(0, result.frames / rate)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"probability, mean of layers {lo}..{hi}")
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=4, fontsize=8, frameon=False)
    caption = f"model: {result.model_label.split(' - ')[0]}"
    if result.is_random:
        caption += f"\nCAVEAT: {PIPELINE_CHECK_NOTE}"
    fig.text(0.01, 0.01, caption, fontsize=8, color="firebrick" if result.is_random else "0.3", va="bottom")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def frames_text(frames: Sequence[int]) -> str:
    if not frames:
        return "none"
    return f"{frames[0]}-{frames[-1]}" if list(frames) == list(range(frames[0], frames[-1] + 1)) else str(list(frames))


def model_banner(model, vector_desc: str | None = None) -> str:
    """HTML: what model is loaded (with the pipeline-check caveat for random weights) and which vector."""
    kind = "PersonaPlex-style (user heads)" if model.spec.has_user_heads else "Moshi-style"
    lines = [f"<b>Model:</b> {html.escape(model.source)}, {kind}, {model.num_layers} layers x {model.hidden_size}"]
    if model.is_random:
        lines.append(f"<span class='ds-caveat'>Pipeline check: {html.escape(PIPELINE_CHECK_NOTE)}.</span>")
    if vector_desc:
        lines.append(f"<b>Vector:</b> {html.escape(vector_desc)}")
    return "<div class='ds-banner'>" + "<br>".join(lines) + "</div>"


__all__ = ["frames_text", "model_banner", "plot_run_timeline", "text_segments"]
