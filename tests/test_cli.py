"""duplex-steer commands end to end on the tiny model, and one clear line (exit 2) for user errors."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from duplex_steer.cli import default_steering_layer, main


def _wav(path, seconds=1.0, sr=16_000):
    sf.write(path, np.random.default_rng(0).normal(0, 0.05, int(seconds * sr)).astype(np.float32), sr)
    return path


def test_converse_writes_aligned_audio_and_text(tmp_path, capsys):
    wav = _wav(tmp_path / "in.wav")
    assert main(["converse", "--model", "tiny", "--audio", str(wav), "--out", str(tmp_path / "out"), "--greedy"]) == 0
    audio, sr = sf.read(tmp_path / "out" / "model.wav")
    assert sr == 24_000 and len(audio) == 24_000
    record = json.loads((tmp_path / "out" / "conversation.json").read_text())
    assert "pipeline check" in record["model"] and len(record["pieces"]) == record["frames"] == 13


def test_convert_writes_a_loadable_hf_folder(tmp_path):
    from duplex_steer import load

    assert main(["convert", "tiny-personaplex", str(tmp_path / "hf")]) == 0
    assert load(tmp_path / "hf").spec.dep_q == 16


def test_fit_vector_then_steer(tmp_path, capsys):
    vec = tmp_path / "v.safetensors"
    assert main(["fit-vector", "--model", "tiny", "--out", str(vec), "--split", "user-activity",
                 "--dialogues", "3", "--batch-size", "3"]) == 0
    assert "held-out AUC" in capsys.readouterr().out
    out = tmp_path / "steer"
    assert main(["steer", "--model", "tiny", "--vector", str(vec), "--out", str(out), "--onset-s", "0.4",
                 "--audio", str(_wav(tmp_path / "in.wav"))]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["onset_frames"] == [5] and result["steered_frames"] == [5, 6, 7]
    assert (out / "steered.wav").is_file() and (out / "unsteered.wav").is_file()


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["converse", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("duplex-steer converse: error:") and "Traceback" not in err
    assert main(["steer", "--model", "tiny", "--vector", str(tmp_path / "missing.safetensors")]) == 2
    assert "vector file not found" in capsys.readouterr().err
    (tmp_path / "bad.wav").write_text("not audio")
    assert main(["converse", "--model", "tiny", "--audio", str(tmp_path / "bad.wav")]) == 2
    assert "could not read" in capsys.readouterr().err


def test_default_layer_is_the_papers_23_of_32():
    assert default_steering_layer(32) == 23 and default_steering_layer(4) == 3


def _fdb_first_12_s(tmp_path, annotate: bool = False):
    """The real FDB item's first 12 s: the user speaks at 0.16 s, then is silent until 11.10 s."""
    from tests.conftest import fixture_dir

    wav, sr = sf.read(str(fixture_dir("fdb-user-interruption-example") / "1" / "input.wav"), dtype="float32")
    path = tmp_path / "fdb12.wav"
    sf.write(str(path), wav[: 12 * sr], sr)
    if annotate:  # as interrupt.json annotates it: [10.53, 13.14] s
        path.with_suffix(".json").write_text(json.dumps(
            {"interruption_onset_s": 10.530666666666667, "turns": [{"start_s": 10.530666666666667, "end_s": 13.144}]}))
    return path


def _vector(tmp_path, model_name: str, layer: int, hidden: int):
    import torch

    from duplex_steer import load
    from duplex_steer.steering import PerceptionVector

    model = load(model_name, device="cpu")
    vec = PerceptionVector({layer: torch.randn(hidden, generator=torch.Generator().manual_seed(0))},
                           {"model": model.fingerprint(), "method": "test"})
    return str(vec.save(tmp_path / f"{model_name}.safetensors"))


def test_steer_oracle_is_snapped_to_the_first_speech_with_the_annotation_kept(tmp_path, capsys):
    audio, vec = _fdb_first_12_s(tmp_path, annotate=True), _vector(tmp_path, "tiny", 2, 64)
    out = tmp_path / "steer"
    base = ["steer", "--model", "tiny", "--vector", vec, "--audio", str(audio), "--greedy"]
    assert main([*base, "--out", str(out)]) == 0  # the annotation comes from the JSON beside the recording
    assert "annotated 10.53 s, first speech 11.10 s" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["onset_frames"] == [138] and result["steered_frames"] == [138, 139, 140]
    oracle = result["oracle_onset"]
    assert oracle["annotated_s"] == 10.530666666666667 and oracle["annotated_end_s"] == 13.144
    assert oracle["annotated_frame"] == 131 and oracle["found"] and oracle["snapped"]
    assert main([*base, "--out", str(out), "--onset-s", "10.53", "--no-snap"]) == 0  # the annotation as given
    result = json.loads((out / "result.json").read_text())
    assert result["onset_frames"] == [131] and result["oracle_onset"]["snapped"] is False


def test_steer_detectors_fire_only_while_the_model_speaks_unless_told(tmp_path):
    """The organism listens while the user speaks at 0.16 s: gated detectors (the default) stay quiet there."""
    audio, vec = _fdb_first_12_s(tmp_path), _vector(tmp_path, "organism", 2, 128)
    base = ["steer", "--model", "organism", "--vector", vec, "--audio", str(audio), "--greedy", "--onset", "energy"]
    assert main([*base, "--out", str(tmp_path / "gated")]) == 0
    gated = json.loads((tmp_path / "gated" / "result.json").read_text())
    assert gated["only_while_model_speaks"] is True and 2 not in gated["onset_frames"]
    assert main([*base, "--out", str(tmp_path / "any"), "--no-only-while-speaking"]) == 0
    anytime = json.loads((tmp_path / "any" / "result.json").read_text())
    assert anytime["only_while_model_speaks"] is False and anytime["onset_frames"] == [2, 138]
