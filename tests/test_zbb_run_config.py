"""ZBB run configuration (zbb.run_config): the work a run plays, its checks before any model loads, its JSON."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from zbb import load_items
from zbb.run_config import RunConfig, check_audio, injection, run_work
from zbb.run_folder import RunError
from zbb.scenario import ScenarioRules


def test_run_work_keeps_each_item_and_repetition_together_in_bank_order():
    config = RunConfig(conditions=["no_interrupt", "interrupt"], repetitions=2, limit=3)
    work = run_work(config)
    ids = [it["id"] for it in load_items()[:3]]
    assert [(it["id"], c, r) for it, c, r in work] == [
        (i, c, r) for i in ids for r in range(2) for c in ("no_interrupt", "interrupt")]


def test_run_work_selects_items_by_id_and_refuses_unknown_ones():
    chosen = [it["id"] for it in load_items()[5:7]]
    config = RunConfig(conditions=["interrupt"], items=list(reversed(chosen)))
    assert [it["id"] for it, _, _ in run_work(config)] == chosen  # the bank's order, not the option's
    with pytest.raises(RunError, match=r"unknown item ids \['unicorns-true'\]"):
        run_work(RunConfig(items=[chosen[0], "unicorns-true"]))


@pytest.mark.parametrize(("condition", "expected"), [
    ("interrupt", None), ("interrupt+steer", "steer"), ("interrupt+random", "random"),
    ("interrupt+mistimed", "mistimed"), ("buffered+steer", "steer"), ("no_interrupt+steer", "steer"),
])
def test_injection_names_what_a_condition_injects(condition, expected):
    assert injection(condition) == expected


@pytest.mark.parametrize(("changes", "message"), [
    ({"conditions": ["interupt"]}, "unknown condition 'interupt'"),
    ({"conditions": ["interrupt+steer"]}, "--vector FILE"),
    ({"repetitions": 0}, "at least 1"),
    ({"batch_size": 0}, "at least 1"),
    ({"onset": "energy", "onset_delay_frames": 2}, "oracle onset only"),
    ({"onset_delay_frames": -1}, "0 or more frames"),
    ({"item_bank": str(REPO / "zbb" / "items.jsonl")}, "--audio DIR"),
])
def test_validate_refuses_bad_configurations_with_the_option_to_fix(changes, message):
    config = RunConfig(**{"conditions": ["no_interrupt", "interrupt"], **changes})
    with pytest.raises(RunError, match=message):
        config.validate()


def test_check_audio_names_the_missing_rendering_before_any_model_loads(tmp_path):
    with pytest.raises(Exception, match="rendering folder not found"):
        check_audio(tmp_path / "nowhere", ["interrupt"], limit=1)


def test_json_round_trip_and_configs_saved_before_a_field_existed():
    config = RunConfig(conditions=["interrupt", "interrupt+steer"], vector="v.safetensors", alpha=1.5,
                       rules=ScenarioRules(interrupt_after_frames=4), seed=3, repetitions=2)
    again = RunConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config
    old = config.to_json()
    del old["item_bank"], old["text_prompt"]  # a config.json written before these fields: their defaults
    assert RunConfig.from_json(old) == config
