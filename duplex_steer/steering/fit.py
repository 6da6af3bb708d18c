"""Fit a perception vector: mean(h | perceptive frames) - mean(h | generative frames), per layer.

Frames are labelled online during duplex conversations on turn-by-turn dialogues (never the
benchmark's items) by a pluggable `FrameLabeler`: by ground-truth activity (who is speaking) or by
thresholds on band-averaged affinities (the paper's way). Means are running sums, so memory does not
grow with data; a bounded reservoir of states per class feeds the separation report (PCA explained
variance, AUC of the split along the vector on held-out dialogues).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..engine.conversation import ConversationPrompt, converse, describe_prompt
from ..engine.noise import key_for
from ..errors import DuplexSteerError
from ..hooks import CurrentFrameSink, check_layers, patch_record
from ..probes.activity import WORD_RULE, TextActivityRule, model_activity_rule
from .defaults import FRAME_SPLITS
from .vector import PerceptionVector

PERCEPTIVE, GENERATIVE, SKIP = 1, -1, 0


class FitError(DuplexSteerError, ValueError):
    """Not enough labelled frames, or inputs that cannot be fitted."""


class FrameLabeler(Protocol):
    """Labels each batch item's current frame: +1 perceptive, -1 generative, 0 skip.

    `start` is called before each batch with the model, the seed and the noise keys (one per dialogue,
    `engine.noise.key_for`) its conversation will use.
    """

    def start(self, batch: Sequence[Any], model=None, seed: int | None = None,
              noise_keys: Sequence[int] | None = None) -> None: ...

    def label(self, session, frame: int) -> np.ndarray: ...


@dataclass
class ActivityLabeler:
    """Perceptive: the user speaks and the model is silent; generative: the reverse.

    User activity comes from each dialogue's turn timings; model activity from the text tokens the
    model sampled, by its vocabulary's rule (`probes.activity.model_activity_rule`; `hold` overrides). `require_model_silence=False`
    drops the model-side condition (perceptive = user speaking, generative = user silent), which is
    what a random-weight model, always "speaking", can be fitted with.
    """

    hold: int | None = None
    require_model_silence: bool = True
    _rule: TextActivityRule | None = field(default=None, init=False, repr=False)
    _user: np.ndarray | None = field(default=None, init=False, repr=False)
    _text: list[np.ndarray] = field(default_factory=list, init=False, repr=False)

    def start(self, batch: Sequence[Any], model=None, seed: int | None = None,
              noise_keys: Sequence[int] | None = None) -> None:
        speaking = [d.user_speaking() for d in batch]
        T = max(len(s) for s in speaking)
        self._user = np.zeros((len(batch), T), bool)
        for i, s in enumerate(speaking):
            self._user[i, : len(s)] = s
        self._text = []
        self._rule = model_activity_rule(model, self.hold) if model is not None else WORD_RULE.with_hold(self.hold)

    def label(self, session, frame: int) -> np.ndarray:
        self._text.append(session.last_sampled_text.cpu().numpy())
        user = self._user[:, frame] if frame < self._user.shape[1] else np.zeros(len(self._user), bool)
        if not self.require_model_silence:
            return np.where(user, PERCEPTIVE, GENERATIVE)
        model = self._rule.speaking_now(np.stack(self._text, 1))
        return np.where(user & ~model, PERCEPTIVE, np.where(model & ~user, GENERATIVE, SKIP))


@dataclass
class AffinityLabeler:
    """The paper's split: thresholds on band-averaged affinities.

    S_gen and S_perc are probabilities over vocabularies of very different sizes (text vs audio
    codes), so each band series is z-scored over the batch's frames first; a frame is perceptive
    where z(S_perc) - z(S_gen) > margin and generative where z(S_gen) - z(S_perc) > margin. The
    affinities come from a first pass with the same noise keys (the same conversation: sampling is keyed
    and hooks do not change outputs); only [B, T, L] floats are kept. The z-scores are over the batch's
    frames, so unlike `ActivityLabeler`'s split this one depends on which dialogues share a batch.
    """

    margin: float = 0.5
    band: tuple[int, int] | None = None
    greedy: bool = False
    _labels: np.ndarray | None = field(default=None, init=False, repr=False)

    @staticmethod
    def zscore(x: np.ndarray) -> np.ndarray:
        return (x - np.nanmean(x)) / (np.nanstd(x) + 1e-12)

    def start(self, batch: Sequence[Any], model=None, seed: int | None = None,
              noise_keys: Sequence[int] | None = None) -> None:
        from ..probes.affinity import compute_affinities

        result, _ = compute_affinities(model, [(d.audio(), SAMPLE_RATE) for d in batch], band=self.band,
                                       greedy=self.greedy, seed=seed, noise_keys=noise_keys)
        diff = self.zscore(result.band_perc) - self.zscore(result.band_gen)  # [B, T]; NaN at the last frame
        self._labels = np.where(diff > self.margin, PERCEPTIVE, np.where(-diff > self.margin, GENERATIVE, SKIP))

    def label(self, session, frame: int) -> np.ndarray:
        return self._labels[:, frame]


def make_labeler(split: str = "activity", margin: float = 0.5) -> ActivityLabeler | AffinityLabeler:
    """The labeler of a `--split`: activity (user speaks and model silent vs the reverse), user-activity (user
    speaks vs not), affinity (z-scored band S_perc vs S_gen beyond `margin`, the paper's way)."""
    if split not in FRAME_SPLITS:
        raise FitError(f"unknown frame split {split!r}: use one of {', '.join(FRAME_SPLITS)}")
    if split == "affinity":
        return AffinityLabeler(margin=margin)
    return ActivityLabeler(require_model_silence=split == "activity")


@dataclass
class _ClassStats:
    """Running sums and a bounded reservoir of states for one class at one layer."""

    total: Tensor
    count: int = 0
    reservoir: list[Tensor] = field(default_factory=list)
    seen: int = 0


@dataclass
class FitReport:
    """What the fit saw and how well the vector separates the classes (per layer)."""

    counts: dict[str, int]
    layers: dict[int, dict[str, float]]

    def to_text(self) -> str:
        lines = [f"frames: perceptive {self.counts['perceptive']}, generative {self.counts['generative']}, "
                 f"held-out perceptive {self.counts['heldout_perceptive']}, "
                 f"held-out generative {self.counts['heldout_generative']}"]
        for layer, r in sorted(self.layers.items()):
            lines.append(f"layer {layer}: norm {r['norm']:.3f}  held-out AUC {r['auc']:.3f}  "
                         f"PC1 explained variance {r['pc1_explained']:.3f}  |cos(PC1, vector)| {r['pc1_cosine']:.3f}")
        return "\n".join(lines)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    from scipy.stats import rankdata

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _pca_report(states: np.ndarray, vector: np.ndarray) -> tuple[float, float]:
    if len(states) < 3:
        return float("nan"), float("nan")
    centred = states - states.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    explained = float(s[0] ** 2 / (s**2).sum())
    cos = float(abs(vt[0] @ vector) / (np.linalg.norm(vector) + 1e-12))
    return explained, cos


def fit_perception_vector(
    model,
    dialogues: Sequence[Any],
    layers: int | Sequence[int],
    labeler: FrameLabeler | None = None,
    *,
    heldout_fraction: float = 0.2,
    batch_size: int = 4,
    reservoir: int = 2000,
    seed: int = 0,
    greedy: bool = False,
    progress: Callable[[int, int], None] | None = None,
    prompt: ConversationPrompt | None = None,
) -> tuple[PerceptionVector, FitReport]:
    """Run each dialogue through the model, label frames, and return (vector, report).

    `dialogues` are objects with `.audio()` and `.user_speaking()` (see speech.dialogues); the last
    `heldout_fraction` of them only score the vector (AUC), they do not shape it. `prompt` (e.g.
    PersonaPlex's voice and role, `engine.prompt.build_prompt`) starts every conversation.
    """
    layers = check_layers(model, layers)
    labeler = labeler or ActivityLabeler()
    if len(dialogues) < 2:
        raise FitError("need at least 2 dialogues (one is held out for the separation report)")
    n_held = max(1, int(round(len(dialogues) * heldout_fraction)))
    train, held = list(dialogues[:-n_held]), list(dialogues[-n_held:])
    rng = np.random.default_rng(seed)
    d = model.hidden_size
    stats = {(layer, cls): _ClassStats(torch.zeros(d, dtype=torch.float64))
             for layer in layers for cls in (PERCEPTIVE, GENERATIVE)}
    held_states: dict[tuple[int, int], list[np.ndarray]] = {key: [] for key in stats}
    current = CurrentFrameSink()
    handle = patch_record(model, layers, current)
    done = 0
    try:
        for split, first, items in (("train", 0, train), ("held", len(train), held)):
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                # each dialogue's sampling noise is keyed to its place in `dialogues`, and frames after its
                # end (silence padding to the batch's longest) are not labelled: the vector does not
                # depend on the batch size (`fit-vector --batch-size` equals `zbb main`'s fit)
                keys = [key_for(seed, "fit", first + start + i) for i in range(len(batch))]
                waves = [dlg.audio() for dlg in batch]
                frames = np.array([-(-len(w) // FRAME_SAMPLES) for w in waves])
                labeler.start(batch, model=model, seed=seed, noise_keys=keys)

                def on_frame(session, frame, split=split, frames=frames):
                    lab = np.where(frame < frames, labeler.label(session, frame), SKIP)
                    for layer in layers:
                        h = current.states[layer].double().cpu()
                        for cls in (PERCEPTIVE, GENERATIVE):
                            rows = np.nonzero(lab == cls)[0]
                            if not len(rows):
                                continue
                            if split == "held":
                                held_states[(layer, cls)].extend(h[rows].numpy())
                                continue
                            st = stats[(layer, cls)]
                            st.total += h[rows].sum(0)
                            st.count += len(rows)
                            for r in rows:  # reservoir sampling keeps memory bounded
                                st.seen += 1
                                if len(st.reservoir) < reservoir:
                                    st.reservoir.append(h[r].float())
                                elif (j := rng.integers(st.seen)) < reservoir:
                                    st.reservoir[j] = h[r].float()

                converse(model, [(w, SAMPLE_RATE) for w in waves], greedy=greedy, seed=seed,
                         noise_keys=keys, on_frame=on_frame, decode_audio=False, prompt=prompt)
                done += len(batch)
                if progress:
                    progress(done, len(dialogues))
    finally:
        handle.remove()

    counts = {"perceptive": stats[(layers[0], PERCEPTIVE)].count, "generative": stats[(layers[0], GENERATIVE)].count,
              "heldout_perceptive": len(held_states[(layers[0], PERCEPTIVE)]),
              "heldout_generative": len(held_states[(layers[0], GENERATIVE)])}
    if counts["perceptive"] == 0 or counts["generative"] == 0:
        raise FitError(f"no frames in one class ({counts}); with a model that never falls silent use "
                       "ActivityLabeler(require_model_silence=False) (`--split user-activity`)")
    directions, per_layer = {}, {}
    for layer in layers:
        p, g = stats[(layer, PERCEPTIVE)], stats[(layer, GENERATIVE)]
        mu = (p.total / p.count - g.total / g.count).float()
        directions[layer] = mu
        v = mu.numpy()
        pos = np.array(held_states[(layer, PERCEPTIVE)]) @ v if held_states[(layer, PERCEPTIVE)] else np.zeros(0)
        neg = np.array(held_states[(layer, GENERATIVE)]) @ v if held_states[(layer, GENERATIVE)] else np.zeros(0)
        both = torch.stack(p.reservoir + g.reservoir).numpy()
        explained, cos = _pca_report(both, v)
        per_layer[layer] = {"norm": float(mu.norm()), "auc": auc(pos, neg), "pc1_explained": explained,
                            "pc1_cosine": cos}
    meta = {
        "model": model.fingerprint(), "method": "mean-difference", "split": type(labeler).__name__,
        "labeler": {k: v for k, v in vars(labeler).items() if not k.startswith("_")},
        "frame_counts": counts, "dialogues": {"train": len(train), "heldout": len(held)},
        "report": {str(k): v for k, v in per_layer.items()}, "toolkit_version": __version__,
        "pipeline_check_only": bool(model.is_random), "prompt": describe_prompt(prompt),
    }
    return PerceptionVector(directions, meta), FitReport(counts, per_layer)
