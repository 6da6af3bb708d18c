"""State inertia: how many frames after a user onset the model's middle layers turn perceptive.

Take-over frame of an onset t0: the first frame t >= t0 at which the band-averaged S_perc exceeds the
band-averaged S_gen for `k` consecutive frames (t .. t + k - 1). Inertia = t - t0 frames (x 80 ms).
An onset with no take-over within `max_frames` (or before the next onset or the end) is censored:
reported, never averaged. Each onset is labelled 'speaking' when the model's MEASURED activity (its
text stream) shows speech in the `window` frames before the onset, else 'listening'.

Paired scenarios put the same utterance after a "Tell me about X" turn and a short silence (the model
should still be listening) or a long one (it should be talking); the label still comes from measurement.
All scenarios of one pair share their sampling noise (`scenario_noise_key`), and a steered run of a
scenario (`run_scenarios(intervention=...)`, e.g. `steering.steer.steer_at_onsets`) adds the vector from
the utterance's onset frame, gated on the absolute (session) frame index, so steered - unsteered differs
only by the steering. The affinities of
every scenario around its onset (`OnsetWindows`) feed the onset-aligned figures and `inertia_pairs`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, pad_to_frames
from ..engine.conversation import FrameCallback
from ..engine.noise import key_for
from .activity import classify_onset
from .affinity import AffinityResult, compute_affinities
from .options import K_CONSECUTIVE, MAX_FRAMES

ONSET_WINDOW = 3
WINDOW_BEFORE, WINDOW_AFTER = 5, 30  # onset-aligned windows: frames -5 .. +30 around each utterance onset


@dataclass
class OnsetInertia:
    """One onset: where, in which condition, and the inertia in frames (None = censored)."""

    item: int
    onset: int
    condition: str
    frames: int | None
    label: str = ""

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / FRAME_RATE


def takeover_frame(band_gen: np.ndarray, band_perc: np.ndarray, onset: int, k: int = K_CONSECUTIVE,
                   end: int | None = None) -> int | None:
    """First t in [onset, end) with band_perc > band_gen on t .. t + k - 1 (all inside [onset, end))."""
    end = len(band_gen) if end is None else min(end, len(band_gen))
    perceptive = np.asarray(band_perc) > np.asarray(band_gen)  # NaN compares False
    run = 0
    for t in range(onset, end):
        run = run + 1 if perceptive[t] else 0
        if run == k:
            return t - k + 1
    return None


def measure_inertia(result: AffinityResult, k: int = K_CONSECUTIVE, max_frames: int = MAX_FRAMES,
                    window: int = ONSET_WINDOW, labels: Sequence[str] | None = None) -> list[OnsetInertia]:
    """Inertia of every onset of every batch item in `result` (activity must be present)."""
    if result.activity is None:
        raise ValueError("the affinity result has no activity; compute it with compute_affinities")
    gen, perc = result.band_gen, result.band_perc
    out = []
    for b, onsets in enumerate(result.onsets):
        for j, t0 in enumerate(onsets):
            end = min(t0 + max_frames, onsets[j + 1] if j + 1 < len(onsets) else result.frames)
            take = takeover_frame(gen[b], perc[b], t0, k, end)
            out.append(OnsetInertia(b, int(t0), classify_onset(result.activity.model[b], t0, window),
                                    None if take is None else take - t0, labels[b] if labels else ""))
    return out


def summarize(inertias: Sequence[OnsetInertia]) -> dict[str, Any]:
    """Per condition: count, censored, mean / median / values (frames); and speaking - listening."""
    out: dict[str, Any] = {}
    for cond in ("listening", "speaking"):
        vals = [x.frames for x in inertias if x.condition == cond and x.frames is not None]
        out[cond] = {
            "n": sum(x.condition == cond for x in inertias),
            "censored": sum(x.condition == cond and x.frames is None for x in inertias),
            "mean_frames": statistics.fmean(vals) if vals else None,
            "median_frames": statistics.median(vals) if vals else None,
            "values": vals,
        }
    a, b = out["speaking"], out["listening"]
    both = a["mean_frames"] is not None and b["mean_frames"] is not None
    out["difference_speaking_minus_listening"] = {
        "mean_frames": a["mean_frames"] - b["mean_frames"] if both else None,
        "median_frames": a["median_frames"] - b["median_frames"] if both else None,
    }
    out["frame_s"] = 1 / FRAME_RATE
    return out


# --- paired scenarios -------------------------------------------------------------------------------
@dataclass
class Scenario:
    """A constructed recording: context turn, `gap_s` of silence, then the utterance (onset known)."""

    id: str
    wav: np.ndarray = field(repr=False)
    onset: int  # frame of the utterance's first sample
    gap_s: float
    turns: list[dict[str, float]]
    text: str = ""
    pair_id: str = ""  # the query both members of a pair share (their noise key and pairing)


def build_pair(context: np.ndarray, utterance: np.ndarray, pair_id: str, gaps_s: Sequence[float] = (0.4, 4.0),
               lead_in_s: float = 0.5, tail_s: float = 2.0, text: str = "") -> list[Scenario]:
    """The same utterance after the context turn and each silence in `gaps_s` (short: listening; long: speaking).

    The utterance starts on a frame boundary, so its onset frame is exact.
    """
    out = []
    lead = np.zeros(round(lead_in_s * SAMPLE_RATE), np.float32)
    for gap in gaps_s:
        head = pad_to_frames(np.concatenate([lead, context, np.zeros(round(gap * SAMPLE_RATE), np.float32)]))
        tail = np.zeros(round(tail_s * SAMPLE_RATE), np.float32)
        wav = pad_to_frames(np.concatenate([head, utterance, tail]).astype(np.float32))
        turns = [{"start_s": len(lead) / SAMPLE_RATE, "end_s": (len(lead) + len(context)) / SAMPLE_RATE},
                 {"start_s": len(head) / SAMPLE_RATE, "end_s": (len(head) + len(utterance)) / SAMPLE_RATE}]
        out.append(Scenario(f"{pair_id}@gap{gap:g}s", wav, len(head) // FRAME_SAMPLES, float(gap), turns, text,
                            pair_id))
    return out


def zbb_pairs(n: int = 8, gaps_s: Sequence[float] = (0.4, 4.0), audio_dir: str | Path | None = None,
              tail_s: float = 2.0, lead_in_s: float = 0.0) -> list[Scenario]:
    """Pairs from the ZBB audio (checksum-verified): the first `n` queries, each after its own context turn,
    followed by `tail_s` of silence. The context starts after `lead_in_s` (0: at frame 0, as ZBB plays it;
    the committed organism, trained on episodes that open with speech, stays silent after a 0.5 s lead-in)."""
    from ..speech.zbb_audio import load_context_audio, load_query_audio, read_items

    out: list[Scenario] = []
    for item in read_items()[:n]:
        context, query = load_context_audio(audio_dir, item["context"]), load_query_audio(audio_dir, item["id"])
        out += build_pair(context, query, item["id"], gaps_s, lead_in_s=lead_in_s, tail_s=tail_s,
                          text=f"{item['context']} ... {item['text']}")
    return out


def dialogue_pairs(dialogues: Sequence[Any], gaps_s: Sequence[float] = (0.4, 4.0)) -> list[Scenario]:
    """Pairs from the dialogue set: turn 1 of each dialogue after its turn 0 (cut by the known timings)."""
    out: list[Scenario] = []
    for d in dialogues:
        wav = d.audio()
        cut = [wav[int(t.start_s * SAMPLE_RATE) : int(t.end_s * SAMPLE_RATE) + 1] for t in d.turns[:2]]
        out += build_pair(cut[0], cut[1], d.id, gaps_s, text=f"{d.turns[0].text} ... {d.turns[1].text}")
    return out


@dataclass
class OnsetWindows:
    """Affinities of each scenario around its onset: frames -before .. +after (NaN outside the recording)."""

    S_gen: np.ndarray  # [N, before + 1 + after, L]
    S_perc: np.ndarray
    layers: list[int]
    band: tuple[int, int]
    before: int = WINDOW_BEFORE
    after: int = WINDOW_AFTER

    @property
    def offsets(self) -> np.ndarray:
        """Frames from the onset of each window column."""
        return np.arange(-self.before, self.after + 1)

    def band_rows(self) -> list[int]:
        lo, hi = self.band
        return [i for i, layer in enumerate(self.layers) if lo <= layer <= hi]

    def band_average(self, values: np.ndarray) -> np.ndarray:
        """[N, W, L] -> [N, W] mean over the band's layers (NaN where none is finite)."""
        with np.errstate(invalid="ignore"):
            sel = values[..., self.band_rows()]
            counts = np.isfinite(sel).sum(-1)
            return np.where(counts > 0, np.where(np.isfinite(sel), sel, 0.0).sum(-1) / np.maximum(counts, 1), np.nan)

    def subset(self, rows: Sequence[int]) -> OnsetWindows:
        rows = list(rows)
        return OnsetWindows(self.S_gen[rows], self.S_perc[rows], self.layers, self.band, self.before, self.after)


def onset_window(values: np.ndarray, onset: int, before: int = WINDOW_BEFORE, after: int = WINDOW_AFTER) -> np.ndarray:
    """values [T, L] -> [before + 1 + after, L] at frames onset - before .. onset + after (NaN outside 0..T-1)."""
    T = values.shape[0]
    out = np.full((before + 1 + after, *values.shape[1:]), np.nan, np.float32)
    lo, hi = max(0, onset - before), min(T, onset + after + 1)
    if lo < hi:
        out[lo - (onset - before) : hi - (onset - before)] = values[lo:hi]
    return out


def scenario_noise_key(seed: int, scenario: Scenario) -> int:
    """The sampling-noise key of a scenario: the same for both members of a pair and for a steered rerun."""
    return key_for("inertia-scenario", seed, scenario.pair_id or scenario.id)


@dataclass
class InertiaReport:
    """Inertia of a set of onsets with its summary and the affinities behind it."""

    inertias: list[OnsetInertia]
    summary: dict[str, Any]
    results: list[AffinityResult] = field(default_factory=list, repr=False)
    k: int = K_CONSECUTIVE
    max_frames: int = MAX_FRAMES
    windows: OnsetWindows | None = field(default=None, repr=False)  # scenario runs: one row per scenario

    def to_json(self) -> dict[str, Any]:
        return {"definition": {"k_consecutive": self.k, "max_frames": self.max_frames, "window": ONSET_WINDOW,
                               "takeover": "first frame >= onset with band S_perc > band S_gen for k frames"},
                "summary": self.summary, "onsets": [asdict(x) for x in self.inertias]}


OnsetIntervention = Callable[[Sequence[int]], AbstractContextManager[FrameCallback]]
"""Given each batch item's onset (recording frame), a context yielding a `before_frame` callback that acts
from those onsets on (e.g. `steering.steer.steer_at_onsets`, partially applied to a model and settings)."""


def run_scenarios(model, scenarios: Sequence[Scenario], batch_size: int = 8, k: int = K_CONSECUTIVE,
                  max_frames: int = MAX_FRAMES, intervention: OnsetIntervention | None = None,
                  **affinity_kwargs: Any) -> InertiaReport:
    """Affinities on every scenario (batches of `batch_size`), inertia at each utterance onset.

    Sampling noise is keyed per pair (`scenario_noise_key`, unless greedy or seed=None), so results do not
    depend on batching and a rerun with an `intervention` (e.g. steering from each onset) draws the same.
    """
    inertias: list[OnsetInertia] = []
    results, gens, percs = [], [], []
    seed = affinity_kwargs.get("seed", 0)
    for i in range(0, len(scenarios), batch_size):
        chunk = scenarios[i : i + batch_size]
        kw = dict(affinity_kwargs, onsets=[[s.onset] for s in chunk], turns=[s.turns for s in chunk])
        if seed is not None and not affinity_kwargs.get("greedy", False):
            kw["noise_keys"] = [scenario_noise_key(seed, s) for s in chunk]
        with intervention([s.onset for s in chunk]) if intervention else nullcontext() as before_frame:
            res, _ = compute_affinities(model, [s.wav for s in chunk], before_frame=before_frame, **kw)
        for x in measure_inertia(res, k, max_frames, labels=[s.id for s in chunk]):
            x.item += i
            inertias.append(x)
        for b, s in enumerate(chunk):  # cut at the scenario's own end: a batch pads shorter ones with silence
            own = len(s.wav) // FRAME_SAMPLES
            gens.append(onset_window(res.S_gen[b, :own], s.onset))
            percs.append(onset_window(res.S_perc[b, :own], s.onset))
        results.append(res)
    windows = (OnsetWindows(np.stack(gens), np.stack(percs), list(results[0].layers), tuple(results[0].band))
               if results else None)
    return InertiaReport(inertias, summarize(inertias), results, k, max_frames, windows)
