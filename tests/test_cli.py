"""duplex-steer commands end to end on the tiny model, and one clear line (exit 2) for user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.cli import main
from duplex_steer.steering.defaults import default_steering_layer


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
    assert main(["train-organism", "--false-descriptions", "0", "--out", str(tmp_path / "never")]) == 2
    assert "--false-descriptions must be at least 1" in capsys.readouterr().err
    assert main(["train-organism", "--answer-weight", "0", "--out", str(tmp_path / "never")]) == 2
    assert "--answer-weight must be positive" in capsys.readouterr().err
    assert main(["train-organism", "--zbb-subject-rate", "1.5", "--out", str(tmp_path / "never")]) == 2
    assert "--zbb-subject-rate must be between 0 and 1" in capsys.readouterr().err
    assert main(["train-organism", "--interruption-zbb-subject-rate", "-0.1", "--out", str(tmp_path / "never")]) == 2
    assert "--interruption-zbb-subject-rate must be between 0 and 1" in capsys.readouterr().err
    assert main(["train-organism", "--tag-noise", "1", "--out", str(tmp_path / "never")]) == 2
    assert "--tag-noise must be at least 0 and below 1" in capsys.readouterr().err
    assert main(["train-organism", "--tag-noise-while-talking", "-0.1", "--out", str(tmp_path / "never")]) == 2
    assert "--tag-noise-while-talking must be at least 0 and below 1" in capsys.readouterr().err
    assert main(["train-organism", "--user-variants", "7", "--out", str(tmp_path / "never")]) == 2
    assert "--user-variants must be at least 8" in capsys.readouterr().err
    assert main(["train-organism", "--pause-variants", "-0.1", "--out", str(tmp_path / "never")]) == 2
    assert "--pause-variants must be between 0 and 1" in capsys.readouterr().err
    assert main(["train-organism", "--lossy-variants", "1.5", "--out", str(tmp_path / "never")]) == 2
    assert "--lossy-variants must be between 0 and 1" in capsys.readouterr().err
    for bounds in (["80", "30"], ["0", "30"], ["30", "113"]):
        assert main(["train-organism", "--monologue-frames", *bounds, "--out", str(tmp_path / "never")]) == 2
        assert "--monologue-frames takes MIN MAX with 1 <= MIN <= MAX <= 112" in capsys.readouterr().err
    assert main(["train-organism", "--band-mels", "49", "--out", str(tmp_path / "never")]) == 2
    assert "--band-mels must lie in 0..48" in capsys.readouterr().err
    assert main(["train-organism", "--codec-augmentations", "-1", "--out", str(tmp_path / "never")]) == 2
    assert "--codec-augmentations must be 0 or more" in capsys.readouterr().err
    assert main(["train-organism", "--band-mels", "32", "--codec-from", "duplex_steer/organism/weights",
                 "--out", str(tmp_path / "never")]) == 2
    assert "drop one or the other" in capsys.readouterr().err
    assert main(["train-organism", "--codec-renderings", "7200", "--codec-from", "duplex_steer/organism/weights",
                 "--out", str(tmp_path / "never")]) == 2
    assert "drop one or the other" in capsys.readouterr().err
    assert main(["train-organism", "--codec-renderings", "0", "--out", str(tmp_path / "never")]) == 2
    assert "--codec-renderings must be at least 1" in capsys.readouterr().err
    assert main(["train-organism", "--codec-epochs", "0", "--out", str(tmp_path / "never")]) == 2
    assert "--codec-epochs must be at least 1, got 0" in capsys.readouterr().err
    assert main(["train-organism", "--codec-epochs", "6", "--codec-from", "duplex_steer/organism/weights",
                 "--out", str(tmp_path / "never")]) == 2
    assert "drop one or the other" in capsys.readouterr().err
    assert main(["train-organism", "--codec-band-masks", "-1", "--out", str(tmp_path / "never")]) == 2
    assert "--codec-band-masks must be 0 or more, got -1" in capsys.readouterr().err
    assert main(["train-organism", "--codec-time-masks", "2", "--codec-from", "duplex_steer/organism/weights",
                 "--out", str(tmp_path / "never")]) == 2
    assert "drop one or the other" in capsys.readouterr().err
    assert main(["train-organism", "--codec-pause-share", "1.5", "--out", str(tmp_path / "never")]) == 2
    assert "--codec-pause-share is a share of the augmented copies: 0..1, got 1.5" in capsys.readouterr().err
    assert main(["train-organism", "--codec-pause-share", "0.3", "--codec-from", "duplex_steer/organism/weights",
                 "--out", str(tmp_path / "never")]) == 2
    assert "drop one or the other" in capsys.readouterr().err
    assert main(["train-organism", "--zero-buffer-rate", "0.6", "--out", str(tmp_path / "never")]) == 2
    assert "--zero-buffer-rate must lie in 0..0.55" in capsys.readouterr().err
    assert main(["train-organism", "--zero-buffer-rate", "-0.01", "--out", str(tmp_path / "never")]) == 2
    assert "--zero-buffer-rate must lie in" in capsys.readouterr().err
    assert main(["train-organism", "--steps", "0", "--out", str(tmp_path / "never")]) == 2
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err
    assert main(["train-organism", "--batch-size", "0", "--out", str(tmp_path / "never")]) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()  # refused before any speech is rendered or folder written


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


# --- defaults and the newcomer's messages ----------------------------------------------------------------
def test_every_model_command_defaults_to_the_organism():
    from duplex_steer.cli import build_parser

    parser = build_parser()
    for argv in (["converse"], ["analyze"], ["fit-vector", "--out", "v.safetensors"], ["steer", "--vector", "v"],
                 ["demo"]):
        assert parser.parse_args(argv).model == "organism", argv
    steer = parser.parse_args(["steer", "--vector", "v"])
    assert (steer.layer, steer.alpha, steer.span) == (None, None, None)  # None: the model's default


def _no_model_load(monkeypatch):
    """Make any model load fail loudly: the checks under test must come before it."""
    import duplex_steer.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model loaded before the inputs were checked")

    monkeypatch.setattr(duplex_steer.models, "load", refuse)


def _organism_vector(tmp_path, layers=(5,)):
    import torch

    from duplex_steer.steering import PerceptionVector

    # the organism has user-stream heads (dep_q 16): a PersonaPlex-shaped architecture
    fingerprint = {"architecture": "moshi-personaplex", "hidden_size": 128, "num_layers": 6, "checkpoint": "organism"}
    vec = PerceptionVector({k: torch.ones(128) for k in layers}, {"model": fingerprint, "method": "test"})
    return str(vec.save(tmp_path / "organism.safetensors"))


def _err(capsys) -> str:
    """The error line (the last of stderr; the lines before it say what loaded)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


def test_steer_checks_its_inputs_before_the_model_loads(tmp_path, capsys, monkeypatch):
    _no_model_load(monkeypatch)
    vec, wav = _organism_vector(tmp_path), str(_wav(tmp_path / "in.wav", seconds=2.0))
    steer = ["steer", "--vector", vec, "--audio", wav, "--out", str(tmp_path / "o")]
    assert main(["steer", "--vector", vec, "--audio", str(tmp_path / "missing.wav")]) == 2
    assert "audio file not found" in _err(capsys)
    (tmp_path / "bad.safetensors").write_text("not a vector")
    assert main(["steer", "--vector", str(tmp_path / "bad.safetensors"), "--audio", wav]) == 2
    assert "is not a safetensors vector file" in _err(capsys)
    assert main([*steer, "--layer", "9"]) == 2
    assert _err(capsys) == ("duplex-steer steer: error: --layer 9: the model this vector was fitted on has 6 layers "
                            "(0..5); pick one of them")
    assert main([*steer, "--layer", "3"]) == 2
    assert "the vector holds layers [5]; steer at one of them, or fit a vector at this layer with " \
           "`duplex-steer fit-vector --layers 3`" in _err(capsys)
    assert main([*steer, "--alpha", "-2"]) == 2
    assert "--alpha -2 is negative" in (err := _err(capsys)) and "--allow-negative-alpha" in err
    assert main([*steer, "--onset-s", "3.5"]) == 2
    assert "the oracle onset 3.50 s is outside" in (err := _err(capsys)) and "which lasts 2.00 s" in err


def test_steer_layer_past_the_models_depth_names_the_depth(tmp_path, capsys):
    """A vector without the model's depth in its metadata: the check happens after loading, and names the depth."""
    import torch

    from duplex_steer.steering import PerceptionVector

    vec = str(PerceptionVector({2: torch.ones(128)}, {"method": "test"}).save(tmp_path / "v.safetensors"))
    argv = ["steer", "--vector", vec, "--audio", str(_wav(tmp_path / "in.wav")), "--out", str(tmp_path / "o"),
            "--onset-s", "0.4", "--layer", "9"]
    assert main(argv) == 2
    assert "--layer 9: the model has 6 layers (0..5); pick one of them" in _err(capsys)


def test_steer_negative_alpha_runs_when_asked_and_records_its_settings(tmp_path, capsys):
    vec, wav = _organism_vector(tmp_path), str(_wav(tmp_path / "in.wav"))
    out = tmp_path / "o"
    argv = ["steer", "--vector", vec, "--audio", wav, "--out", str(out), "--onset-s", "0.4", "--greedy", "--no-snap"]
    assert main([*argv, "--alpha", "-1", "--allow-negative-alpha"]) == 0
    steering = json.loads((out / "result.json").read_text())["steering"]
    assert (steering["layer"], steering["alpha"], steering["span"]) == (5, -1.0, 3)
    assert steering["from"] == {"layer": "the model's default", "alpha": "--alpha", "span": "the model's default"}
    assert main(argv) == 0  # the organism's own alpha
    result = json.loads((out / "result.json").read_text())
    assert result["steering"]["alpha"] == 1.0 and result["note"].startswith("organism: a 4.2M-parameter model")
    assert "steering: layer 5 (the model's default), alpha 1 (the model's default)" in capsys.readouterr().err


def test_recordings_past_the_length_limit_are_refused_unless_lifted(tmp_path, capsys, monkeypatch):
    _no_model_load(monkeypatch)
    wav = str(_wav(tmp_path / "long.wav", seconds=130.0, sr=8000))
    assert main(["converse", "--audio", wav]) == 2
    assert _err(capsys) == (f"duplex-steer converse: error: {wav} is 130.0 s long, over the 120 s limit; trim it, "
                            "or raise the limit with --max-seconds SECONDS or lift it with --no-length-limit")
    assert main(["analyze", "--audio", wav, "--max-seconds", "100"]) == 2
    assert "over the 100 s limit" in _err(capsys)
    for lifted in (["--no-length-limit"], ["--max-seconds", "200"]):
        with pytest.raises(AssertionError, match="the model loaded"):  # past the check: the load comes next
            main(["converse", "--audio", wav, *lifted])


def test_a_recording_past_the_organisms_context_gets_a_warning(tmp_path, capsys):
    from duplex_steer import load
    from duplex_steer.recording_limits import context_warning

    organism = load("organism")
    assert context_warning(256, organism) is None
    assert context_warning(350, organism, "in.wav") == (
        "warning: in.wav lasts 28.0 s (350 frames); organism attends to the last 256 frames (20.5 s) only, "
        "so speech before that falls out of its window")
    wav = _wav(tmp_path / "long.wav", seconds=21.0, sr=8000)
    assert main(["converse", "--audio", str(wav), "--out", str(tmp_path / "o"), "--greedy"]) == 0
    assert f"warning: {wav} lasts 21.0 s (263 frames)" in capsys.readouterr().err


def test_steering_options_name_the_defaults_a_run_uses() -> None:
    """--layer / --alpha / --span help names the organism's settings as they are (they once said layer 2 after
    the default had become 5) and the paper's for other models."""
    import argparse

    from duplex_steer.organism.settings import STEERING_DEFAULTS
    from duplex_steer.steering_args import add_steering_args

    parser = argparse.ArgumentParser()
    add_steering_args(parser)
    helps = {a.dest: " ".join(a.help.split()) for a in parser._actions if a.dest in ("layer", "alpha", "span")}
    assert f"the organism {STEERING_DEFAULTS['layer']}," in helps["layer"]
    assert "32-layer Moshi / PersonaPlex 23" in helps["layer"]
    assert f"the organism {STEERING_DEFAULTS['alpha']}, other models 5.5" in helps["alpha"]
    assert f"the organism {STEERING_DEFAULTS['span']}, other models 3" in helps["span"]
