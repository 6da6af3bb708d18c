"""load(): presets, native and HF folders, conversion round trip, and one clear error per failure."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from duplex_steer import PIPELINE_CHECK_NOTE, LoadError, load
from duplex_steer.engine.export import export_hf
from tests.conftest import fixture_dir


def test_presets_are_labelled_as_pipeline_checks(tiny, tiny_personaplex):
    assert PIPELINE_CHECK_NOTE in tiny.label and tiny.is_random
    assert tiny.spec.dep_q == 8 and tiny_personaplex.spec.dep_q == 16
    assert tiny.num_layers == len(tiny.layers) == 4
    assert tiny.fingerprint()["architecture"] == "moshi"
    assert tiny_personaplex.fingerprint()["architecture"] == "moshi-personaplex"


def test_presets_are_deterministic():
    a, b = load("tiny"), load("tiny")
    for (name, p), (_, q) in zip(a.hf.state_dict().items(), b.hf.state_dict().items(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("fixture", ["kyutai-tiny-moshi", "kyutai-tiny-personaplex"])
def test_hf_export_round_trip_keeps_every_logit(fixture, tmp_path):
    native = load(fixture_dir(fixture), lm_only=True)
    export_hf(native, tmp_path / "hf")
    again = load(tmp_path / "hf")
    assert again.spec.dep_q == native.spec.dep_q
    codes = torch.randint(0, 64, (1, 17, 9), generator=torch.Generator().manual_seed(0))
    a, b = native.forward_codes(codes), again.forward_codes(codes)
    assert torch.equal(a.text_logits, b.text_logits)
    assert torch.equal(a.audio_logits.nan_to_num(), b.audio_logits.nan_to_num())


def test_hf_export_refuses_a_model_whose_codec_is_not_mimi(tmp_path):
    from duplex_steer.engine.export import ExportError

    organism = load("organism")
    with pytest.raises(ExportError, match="its own codec, not Mimi"):
        export_hf(organism, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()  # refused before writing anything


def test_hf_export_of_a_language_model_alone_says_its_codec_is_a_placeholder(tmp_path):
    native = load(fixture_dir("kyutai-tiny-moshi"), lm_only=True)
    export_hf(native, tmp_path / "hf")
    assert native.hf.audio_encoder is None  # the placeholder was only lent to the export
    meta = json.loads((tmp_path / "hf" / "duplex_steer.json").read_text())
    assert meta["codec"].startswith("placeholder")


def _copy_fixture(tmp_path, name="kyutai-tiny-moshi"):
    dst = tmp_path / name
    shutil.copytree(fixture_dir(name), dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_native_folder_without_codec_needs_lm_only(tmp_path):
    folder = _copy_fixture(tmp_path)
    with pytest.raises(LoadError, match="Mimi codec"):
        load(folder)


def test_missing_weights_file(tmp_path):
    folder = _copy_fixture(tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(LoadError, match="model.safetensors"):
        load(folder, lm_only=True)


def test_corrupt_weights_file(tmp_path):
    folder = _copy_fixture(tmp_path)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LoadError, match="corrupt or incomplete"):
        load(folder, lm_only=True)


def test_malformed_config(tmp_path):
    folder = _copy_fixture(tmp_path)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(LoadError, match="not valid JSON"):
        load(folder, lm_only=True)


def test_config_that_does_not_match_the_weights(tmp_path):
    folder = _copy_fixture(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["num_layers"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match="not used"):
        load(folder, lm_only=True)


def test_unsupported_architecture_field(tmp_path):
    folder = _copy_fixture(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["norm"] = "layer_norm"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match="'norm'"):
        load(folder, lm_only=True)


def test_unknown_name_lists_the_presets_and_the_organism():
    with pytest.raises(LoadError, match="'organism'.*tiny"):
        load("no-such-model")


def test_uncached_repo_id_offline_fails_fast_and_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(LoadError, match="local Hugging Face cache"):
        load("kyutai/not-cached-anywhere")


def test_a_file_instead_of_a_folder(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(LoadError, match="is a file"):
        load(f)
