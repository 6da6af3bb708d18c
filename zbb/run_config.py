"""What a ZBB run is: its configuration (`RunConfig`, saved as config.json), the conditions' injections
and the (item, condition, repetition) work it plays; checked before any model loads (`zbb.runner` plays it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duplex_steer.engine.prompt import check_voice_arg
from duplex_steer.model_args import DEFAULT_MODEL
from duplex_steer.steering import ONLY_WHILE_MODEL_SPEAKS
from duplex_steer.steering.defaults import check_steering_args

from . import load_bank
from .rendering import validate_rendering
from .report import KNOWN_CONDITIONS
from .run_folder import RunError
from .scenario import ScenarioRules, split_condition

RANDOM = "interrupt+random"
RANDOM_CONTROL = "a random direction of the vector's norm per (item, repetition), keyed to the run's seed"
STEERED = ("interrupt+steer", RANDOM, "interrupt+mistimed", "buffered+steer", "no_interrupt+steer")


def injection(condition: str) -> str | None:
    """'steer', 'random', 'mistimed' or None: what a condition injects."""
    return split_condition(condition)[1]


@dataclass
class RunConfig:
    """Everything that determines a run's results (saved as config.json)."""

    model: str = DEFAULT_MODEL
    conditions: list[str] = field(default_factory=lambda: ["no_interrupt", "interrupt", "interrupt+steer"])
    vector: str | None = None
    layer: int | None = None  # None: the model's default (duplex_steer.steering.defaults), recorded once resolved
    alpha: float | None = None  # None: the model's default (the organism 1.0, other models 5.5)
    span: int | None = None  # None: the model's default (3 frames)
    schedule: str = "linear"
    onset: str = "oracle"
    onset_only_while_model_speaks: bool = ONLY_WHILE_MODEL_SPEAKS  # energy / VAD only
    onset_delay_frames: int = 0  # oracle only: steer this many frames after the first speech (lateness study)
    rules: ScenarioRules = field(default_factory=ScenarioRules)
    greedy: bool = False
    seed: int = 0
    repetitions: int = 1
    batch_size: int = 16  # scenarios per batch (whole items: grows to fit one); speed only, not identity
    items: list[str] | None = None
    limit: int | None = None
    item_bank: str | None = None  # an item file of ZBB's format (e.g. development items); None: ZBB's 100 items
    asr_model: str | None = None  # score an ASR transcript of the model's audio (zbb.asr), not its text
    audio: str | None = None  # a rendering folder (zbb.rendering, `zbb build`); None: the committed zbb/audio
    voice: str | None = None  # conversation start (engine.prompt.build_prompt); None: the model's default
    text_prompt: str | None = None  # role text; None: the model's default ("none": no role)
    dtype: str | None = None  # weights dtype (None: bfloat16 on a GPU, float32 on the CPU); changes results
    device: str | None = None  # where it runs (None: cuda if available); speed only, not identity

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data["rules"] = ScenarioRules(**data.get("rules", {}))
        return cls(**data)

    def validate(self) -> None:
        for c in self.conditions:
            if c not in KNOWN_CONDITIONS:
                raise RunError(f"unknown condition {c!r}; choose from {', '.join(KNOWN_CONDITIONS)}")
        if any(injection(c) for c in self.conditions) and not self.vector:
            raise RunError("steered conditions need --vector FILE (make one with `duplex-steer fit-vector`)")
        if self.vector:  # readable, and the layer in it, before any model loads (alpha's sign: the CLI)
            check_steering_args(self.vector, self.layer, allow_negative_alpha=True)
        if self.repetitions < 1 or self.batch_size < 1:
            raise RunError("repetitions and batch size must be at least 1")
        if self.onset_delay_frames < 0 or (self.onset_delay_frames and self.onset != "oracle"):
            raise RunError(f"--onset-delay {self.onset_delay_frames}: a delay is 0 or more frames, after the oracle "
                           "onset only (--onset oracle); a detector's own latency is measured, not set")
        if self.item_bank is not None:
            load_bank(self.item_bank)  # readable and valid, before any model loads
            if self.audio is None:
                raise RunError(f"--item-bank {self.item_bank}: its items have no audio in the committed zbb/audio "
                               "(ZBB's items only); render them with `zbb build --tts ENGINE --item-bank "
                               f"{self.item_bank} --out DIR` and pass --audio DIR")
        if self.audio is not None:
            check_audio(self.audio, self.conditions, self.items, self.limit, self.item_bank)
        check_voice_arg(self.voice)


def check_audio(audio: str | Path, conditions: list[str], items: list[str] | None = None,
                limit: int | None = None, item_bank: str | None = None) -> dict[str, Any]:
    """Check a rendering folder holds every file these conditions and items play (before a model loads)."""
    config = RunConfig(conditions=conditions, items=items, limit=limit, item_bank=item_bank)
    selected = list({it["id"]: it for it, _, _ in run_work(config)}.values())
    kinds = ["query", "context"] + (["buffered"] if any(split_condition(c)[0] == "buffered" for c in conditions) else [])
    return validate_rendering(audio, selected, kinds)


def run_work(config: RunConfig) -> list[tuple[dict[str, Any], str, int]]:
    """Every (item, condition, repetition) of a run, grouped by (item, repetition) (zbb.work's units);
    unknown --items are refused."""
    items = load_bank(config.item_bank)
    if config.items:
        known = {it["id"] for it in items}
        missing = [i for i in config.items if i not in known]
        if missing:
            raise RunError(f"unknown item ids {missing[:5]}; `zbb items` prints the bank's path")
        items = [it for it in items if it["id"] in set(config.items)]
    if config.limit:
        items = items[: config.limit]
    # grouped by (item, repetition): the units that batches and shards keep whole (zbb.work)
    return [(it, c, r) for it in items for r in range(config.repetitions) for c in config.conditions]
