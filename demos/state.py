"""The demo server's state: the loaded model (one at a time), the conversation start, and default
perception vectors fitted per model and layer; and the steering defaults the page starts from."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duplex_steer import load
from duplex_steer.engine.prompt import build_prompt
from duplex_steer.organism.fixtures import default_dialogues
from duplex_steer.steering import ActivityLabeler, PerceptionVector, fit_perception_vector
from duplex_steer.steering.defaults import default_steering, default_steering_layer

from .recordings import DEFAULT_LIMITS, DemoError, DemoLimits

KEEP_RUNS = 8  # run folders kept on disk (older ones are deleted)


def default_layer(num_layers: int, model=None) -> int:
    """The model's default steering layer (`duplex_steer.steering.defaults`)."""
    return default_steering(model)["layer"] if model is not None else default_steering_layer(num_layers)


def default_alpha(model) -> float:
    """The model's default steering strength (`duplex_steer.steering.defaults`)."""
    return default_steering(model)["alpha"]


class DemoState:
    """Server-side state: the loaded model (one at a time) and fitted default vectors per model and layer."""

    def __init__(self, device: str | None = None, fit_dialogues: int = 4, limits: DemoLimits = DEFAULT_LIMITS,
                 dtype: Any = None, voice: str | None = None, text_prompt: str | None = None):
        self.device, self.dtype = device, dtype
        self.voice, self.text_prompt = voice, text_prompt  # --voice / --text-prompt (None: the model's default)
        self.fit_dialogues = fit_dialogues
        self.limits = limits
        self.models: dict[str, Any] = {}
        self.vectors: dict[tuple[str, int], tuple[PerceptionVector, str]] = {}
        self.lock = threading.Lock()  # one run or load at a time (the queue also allows only one)
        self.workdir = Path(tempfile.mkdtemp(prefix="duplex-steer-demo-"))
        weakref.finalize(self, shutil.rmtree, self.workdir, ignore_errors=True)

    def model(self, source: str, progress: Callable[[float, str], None] | None = None):
        """The model for `source`, loading it (and unloading any other) on first use."""
        source = (source or "").strip()
        if not source:
            raise DemoError("no model given: choose a preset or type a folder / hub repo id")
        if source not in self.models:
            if progress:
                progress(0.0, f"loading model {source}")
            self.models.clear()  # one model in memory at a time
            self.models[source] = load(source, device=self.device, dtype=self.dtype)
        return self.models[source]

    def prompt(self, model):
        """The conversation start every run on `model` uses (PersonaPlex's default voice and role for
        PersonaPlex-shaped models unless --voice / --text-prompt say otherwise)."""
        return build_prompt(model, self.voice, self.text_prompt)

    def fitted_vector(self, model, layer: int, progress: Callable[[float, str], None] | None = None,
                      when: str = "on first use") -> tuple[PerceptionVector, str]:
        """A quick vector fitted on the first dialogues of the committed set (cached per model and layer)."""
        key = (model.fingerprint()["checkpoint"], int(layer))
        if key not in self.vectors:
            dialogues = default_dialogues(model)[: self.fit_dialogues]
            labeler = ActivityLabeler(require_model_silence=not model.is_random)

            def report(done: int, total: int) -> None:
                if progress:
                    progress(done / total, f"fitting a perception vector: {done}/{total} dialogues")

            if progress:
                progress(0.0, f"fitting a perception vector on {len(dialogues)} dialogues (layer {layer})")
            vector, rep = fit_perception_vector(model, dialogues, [int(layer)], labeler, progress=report,
                                               prompt=self.prompt(model))
            split = ("user speaking vs user silent (the random model never falls silent)" if model.is_random
                     else "user speaking & model silent vs the reverse")
            auc = rep.layers[int(layer)]["auc"]
            desc = (f"no vector file given: fitted {when} on the first {len(dialogues)} dialogues of the committed "
                    f"set, layer {layer}, split {split}, held-out AUC {auc:.2f}")
            self.vectors[key] = (vector, desc)
        return self.vectors[key]

    def new_run_dir(self) -> Path:
        runs = sorted(self.workdir.glob("run-*"))
        for old in runs[: max(len(runs) - KEEP_RUNS + 1, 0)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"run-{time.time():.0f}-", dir=self.workdir))


def resolve_vector(state: DemoState, model, layer: int, upload: str | None, path_text: str | None,
                   progress: Callable[[float, str], None] | None = None) -> tuple[PerceptionVector, str]:
    """Uploaded file, else the typed path, else a fitted default vector; checked against the model."""
    chosen = upload or (path_text or "").strip()
    if chosen:
        vector = PerceptionVector.load(Path(chosen).expanduser())
        desc = f"vector file {Path(chosen).name} (layers {vector.layers})"
        if vector.meta.get("pipeline_check_only"):
            desc += ", fitted on a random-weight model"
    else:
        vector, desc = state.fitted_vector(model, layer, progress)
    vector.check_compatible(model)
    return vector, desc


__all__ = ["KEEP_RUNS", "DemoState", "default_alpha", "default_layer", "resolve_vector"]
