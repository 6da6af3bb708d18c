"""`duplex-steer analyze` end to end on a short clip, and its one-line errors."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import duplex_steer.cli
import duplex_steer.model_args
from duplex_steer.analyze_command import cmd_analyze, parse_layers, register
from duplex_steer.errors import DuplexSteerError
from duplex_steer.speech.dialogues import Turn


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["analyze", "--device", "cpu", *argv])


def _clip(path, seconds: float = 2.4, sr: int = 24000):
    """Silence, a 1 s "utterance" of noise, silence."""
    wav = np.zeros(int(seconds * sr), np.float32)
    rng = np.random.default_rng(0)
    wav[int(0.6 * sr) : int(1.6 * sr)] = 0.2 * rng.standard_normal(sr)
    sf.write(str(path), wav, sr)
    return path


def test_analyze_writes_the_documented_json_and_figures(tmp_path, capsys):
    out = tmp_path / "out"
    args = _args("--model", "tiny-personaplex", "--audio", str(_clip(tmp_path / "clip.wav")), "--out", str(out),
                 "--layers", "1-3", "--pairs", "1", "--gaps", "0.2", "0.6", "--max-frames", "20")
    assert cmd_analyze(args) == 0
    rec = json.loads((out / "affinity.json").read_text())
    T = 30  # 2.4 s at 12.5 frames/s
    assert rec["frames"] == T and rec["layers"] == [1, 2, 3] and rec["band"] == [1, 3]
    assert len(rec["S_gen"]) == len(rec["S_perc"]) == T and all(len(row) == 3 for row in rec["S_gen"])
    assert rec["S_perc"][-1] == [None, None, None] and all(v is not None for v in rec["S_perc"][0])
    assert len(rec["band_S_gen"]) == T and rec["lenses"] == {"gen": ["text", "depformer-model"],
                                                             "perc": "depformer-user"}
    act = rec["activity"]
    assert len(act["user_speaking"]) == len(act["model_speaking"]) == T and act["user_source"] == "audio energy"
    assert rec["onsets"] == act["onsets"] == [7]  # speech starts at 0.6 s -> frame 7
    assert "PersonaPlex" in rec["model"] and rec["is_random"] and "pipeline check" in rec["note"]
    assert rec["inertia"]["onsets"][0]["onset"] == 7
    inertia = json.loads((out / "inertia.json").read_text())
    assert len(inertia["onsets"]) == 2 and "listening" in inertia["summary"] and inertia["note"]
    for name in ("heatmaps.png", "timeline.png", "inertia.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert "wrote" in capsys.readouterr().out


def test_analyze_with_dialogues_uses_known_turns(tmp_path, tiny, monkeypatch):
    import duplex_steer.speech.dialogues as dialogues

    wav = np.zeros(24000 * 3, np.float32)
    wav[24000:48000] = 0.1
    fake = SimpleNamespace(id="d0", audio=lambda: wav, turns=(Turn("hi", 1.0, 2.0),))
    monkeypatch.setattr(dialogues, "load_dialogues", lambda: [fake, fake])
    monkeypatch.setattr(duplex_steer.model_args, "load_from_args", lambda args: tiny)
    out = tmp_path / "d"
    assert cmd_analyze(_args("--audio", str(_clip(tmp_path / "c.wav")), "--out", str(out), "--dialogues",
                             "--k", "2")) == 0
    inertia = json.loads((out / "inertia.json").read_text())
    assert [x["onset"] for x in inertia["onsets"]] == [12, 12] and inertia["definition"]["k_consecutive"] == 2
    assert (out / "inertia.png").is_file()


def test_bad_inputs_give_one_clear_error(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(duplex_steer.model_args, "load_from_args", lambda args: tiny)
    clip = str(_clip(tmp_path / "ok.wav"))
    silent, short, nan = tmp_path / "silent.wav", tmp_path / "short.wav", tmp_path / "nan.wav"
    sf.write(str(silent), np.zeros(24000, np.float32), 24000)
    sf.write(str(short), 0.1 * np.ones(3000, np.float32), 24000)
    sf.write(str(nan), np.full(24000, np.nan, np.float32), 24000, subtype="FLOAT")
    cases = [(["--audio", str(silent)], "silent"), (["--audio", str(short)], "at least 4 frames"),
             (["--audio", str(nan)], "NaN"), (["--audio", str(tmp_path / "none.wav")], "not found"),
             (["--audio", clip, "--layers", "2-9"], "layer 4 is out of range"),
             (["--audio", clip, "--layers", "x"], "--layers 'x'"),
             (["--audio", clip, "--band", "3", "7"], "band 3..7"),
             (["--audio", clip, "--turns", str(tmp_path / "none.json")], "--turns file not found")]
    for argv, message in cases:
        with pytest.raises(DuplexSteerError, match=message):
            cmd_analyze(_args(*argv, "--out", str(tmp_path / "o")))


def test_cli_prints_one_line_on_error(tmp_path, capsys, monkeypatch):
    """Through duplex_steer.cli.main: silent audio is a user error, one line on stderr."""
    sf.write(str(tmp_path / "s.wav"), np.zeros(24000, np.float32), 24000)
    assert duplex_steer.cli.main(["analyze", "--audio", str(tmp_path / "s.wav"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_parse_layers():
    assert parse_layers("all", 32) is None and parse_layers(None, 32) is None
    assert parse_layers("12-14", 32) == [12, 13, 14]
    assert parse_layers("1, 3 5-6 -1", 32) == [1, 3, 5, 6, -1]


def test_pairs_with_a_steering_vector_write_paired_lags_timelines_and_figures(tmp_path, tiny, monkeypatch, capsys):
    """--pairs 2 --steer-vector on tiny: paired comparisons with intervals in inertia.json, one printed line each,
    the steered rerun identical to the unsteered one before the onset (same keyed noise) and different from it."""
    import torch

    from duplex_steer.steering import PerceptionVector

    vec = PerceptionVector({3: torch.randn(64, generator=torch.Generator().manual_seed(0))},
                           {"model": tiny.fingerprint(), "method": "test"}).save(tmp_path / "v.safetensors")
    monkeypatch.setattr(duplex_steer.model_args, "load_from_args", lambda args: tiny)
    out = tmp_path / "p"
    assert cmd_analyze(_args("--audio", str(_clip(tmp_path / "c.wav")), "--out", str(out), "--pairs", "2",
                             "--gaps", "0.2", "1.0", "--max-frames", "12", "--k", "2", "--steer-vector", str(vec),
                             "--alpha", "40")) == 0
    full = json.loads((out / "inertia.json").read_text())
    rec = full["paired"]
    comps = rec["comparisons"]
    assert list(comps) == ["speaking - listening", "steered - unsteered (speaking)"]
    measured = [x["condition"] for x in full["onsets"]]  # the 4 scenarios' measured states
    speaking = measured.count("speaking")
    sl, st = comps["speaking - listening"], comps["steered - unsteered (speaking)"]
    assert sl["queries"] == 2 and sl["n_pairs"] + len(sl["same_state_queries"]) == 2
    assert st["n_pairs"] == speaking > 0  # every scenario measured speaking is rerun steered
    for entry in comps.values():
        assert entry["n_used"] + entry["censored_pairs"] == entry["n_pairs"]
        assert set(entry) >= {"difference", "ci_low", "ci_high", "censored_as_max_frames", "pairs"}
    assert rec["steering"]["layer"] == 3 and rec["steering"]["alpha"] == 40 and rec["steering"]["span"] == 3
    assert rec["steering"]["from"]["alpha"] == "--alpha" and "max_frames" in rec["censoring"]
    tl = rec["timelines"]
    assert tl["offsets_frames"][0] == -5 and tl["offsets_frames"][-1] == 30
    assert tl["speaking"]["n"] == tl["speaking + steered"]["n"] == speaking
    assert tl.get("listening", {"n": 0})["n"] == 4 - speaking
    plain, steered = (np.array(tl[k]["band_S_gen"], float) for k in ("speaking", "speaking + steered"))
    np.testing.assert_allclose(steered[:5], plain[:5], atol=1e-5)  # frames before the onset: same noise, no steering
    assert np.abs(steered[5:8] - plain[5:8]).max() > 1e-3  # steered from the onset frame on
    for name in ("inertia_timeline.png", "heatmap_pairs.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    printed = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("speaking - listening: ") for line in printed) == 1
    assert sum(line.startswith("steered - unsteered (speaking): ") for line in printed) == 1


def test_steering_options_are_checked_before_the_model_loads(tmp_path, monkeypatch):
    def no_load(args):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(duplex_steer.model_args, "load_from_args", no_load)
    clip = str(_clip(tmp_path / "c.wav"))
    cases = [(["--steer-vector", str(tmp_path / "v.safetensors")], "give --pairs N"),
             (["--pairs", "1", "--alpha", "2"], "give --steer-vector FILE"),
             (["--pairs", "1", "--steer-vector", str(tmp_path / "none.safetensors")], "vector file not found"),
             (["--pairs", "1", "--pairs-audio", str(tmp_path)], "no manifest.json there")]
    for argv, message in cases:
        with pytest.raises(DuplexSteerError, match=message):
            cmd_analyze(_args("--audio", clip, "--out", str(tmp_path / "o"), *argv))
