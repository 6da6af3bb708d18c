"""--voice / --text-prompt: checked before the model loads, recorded in what commands write."""

from __future__ import annotations

import json

import torch

from duplex_steer.cli import main


def test_a_missing_voice_fails_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import duplex_steer.engine as engine

    monkeypatch.setattr(engine, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")),
                        raising=False)
    assert main(["converse", "--model", "tiny", "--voice", str(tmp_path / "nope.wav"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_converse_records_voice_and_role(tmp_path, tiny_personaplex):
    g = torch.Generator().manual_seed(0)
    ring = torch.randint(0, 60, (1, 17, 4), generator=g)
    torch.save({"embeddings": torch.randn(4, 1, 1, 64, generator=g), "cache": ring}, tmp_path / "mine.pt")
    out = tmp_path / "run"
    assert main(["converse", "--model", "tiny-personaplex", "--device", "cpu", "--voice", str(tmp_path / "mine.pt"),
                 "--text-prompt", "w5 w6", "--out", str(out), "--greedy"]) == 0
    record = json.loads((out / "conversation.json").read_text())
    role = len(tiny_personaplex.tokenizer.encode("<system> w5 w6 <system>"))
    assert record["frame_offset"] == 5 + 6 + role + 6
    assert record["prompt"]["voice"] == str(tmp_path / "mine.pt") and record["prompt"]["text_prompt"] == "w5 w6"
    assert record["prompt"]["voice_kind"] == "embeddings" and len(record["prompt"]["voice_sha256"]) == 16


def test_personaplex_models_get_the_default_role_moshi_models_none(tmp_path):
    assert main(["converse", "--model", "tiny-personaplex", "--device", "cpu", "--out", str(tmp_path / "p"),
                 "--greedy"]) == 0
    from duplex_steer.engine.prompt import PERSONAPLEX_DEFAULT_ROLE

    assert json.loads((tmp_path / "p" / "conversation.json").read_text())["prompt"]["text_prompt"] == \
        PERSONAPLEX_DEFAULT_ROLE
    assert main(["converse", "--model", "tiny", "--device", "cpu", "--out", str(tmp_path / "m"), "--greedy"]) == 0
    record = json.loads((tmp_path / "m" / "conversation.json").read_text())
    assert record["prompt"] is None and record["frame_offset"] == 0
