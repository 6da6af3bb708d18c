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
