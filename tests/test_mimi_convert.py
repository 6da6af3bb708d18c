"""Parity of the native-Mimi converter against the reference implementation (kyutai moshi 0.2.13).

The fixture (tests/fixtures/tiny-mimi, see its README) is a tiny random Mimi built and run with the
reference code; here it is converted and run with transformers' MimiModel. Offline, CPU, a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import MimiConfig

from duplex_steer.engine.mimi_convert import (
    KYUTAI_MIMI_KWARGS,
    MimiConversionError,
    convert_mimi_state_dict,
    load_mimi_native,
    mimi_config_from_kyutai,
    mimi_overrides_from_kyutai,
)

FIXTURE = Path(__file__).parent / "fixtures" / "tiny-mimi"
FRAME = 1920  # samples per 12.5 Hz frame at 24 kHz


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((FIXTURE / "config.json").read_text())


@pytest.fixture(scope="module")
def config(meta) -> MimiConfig:
    return MimiConfig(**mimi_overrides_from_kyutai(meta["kyutai"]))


@pytest.fixture(scope="module")
def native() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "model.safetensors"))


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "reference.safetensors"))


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return load_mimi_native(FIXTURE / "model.safetensors", config=config)


def test_config_translation_matches_fixture(meta, config):
    """kyutai kwargs -> MimiConfig reproduces the overrides recorded with the fixture, and the
    overrides on top of the released defaults give the same config."""
    derived = mimi_overrides_from_kyutai(meta["kyutai"])
    for key, value in meta["mimi_config_overrides"].items():
        assert derived[key] == value, key
    assert mimi_config_from_kyutai(**meta["mimi_config_overrides"]).to_dict() == config.to_dict()
    assert config.frame_rate == 12.5 and config.encodec_frame_rate == 25


def test_released_config_is_kyutais():
    c = mimi_config_from_kyutai()
    assert (c.sampling_rate, c.frame_rate, c.hidden_size, c.num_filters) == (24000, 12.5, 512, 64)
    assert (c.num_quantizers, c.codebook_size, c.codebook_dim, c.num_semantic_quantizers) == (32, 2048, 256, 1)
    assert (c.num_hidden_layers, c.num_attention_heads, c.head_dim, c.intermediate_size) == (8, 8, 64, 2048)
    assert (c.sliding_window, c.upsample_groups, c.rope_parameters["rope_theta"]) == (250, 512, 10000.0)
    assert c.upsampling_ratios == KYUTAI_MIMI_KWARGS["seanet"]["ratios"]
    # kyutai ties these; overriding one moves its partner.
    small = mimi_config_from_kyutai(hidden_size=64, num_attention_heads=4, codebook_dim=32)
    assert (small.head_dim, small.upsample_groups, small.num_key_value_heads) == (16, 64, 4)
    assert small.vector_quantization_hidden_dimension == 32


def test_encode_matches_reference_codes(model, ref):
    n_q = ref["codes"].shape[1]  # 8, what Moshi uses (the tiny codec has 10)
    with torch.no_grad():
        codes = model.encode(ref["wav"], num_quantizers=n_q).audio_codes
        codes_all = model.encode(ref["wav"]).audio_codes
    assert codes.shape == ref["codes"].shape
    assert torch.equal(codes, ref["codes"]), f"{int((codes != ref['codes']).sum())} codes differ"
    assert torch.equal(codes_all, ref["codes_all"])


def test_intermediates_match_reference(model, ref):
    with torch.no_grad():
        hidden = model.encoder.encoder_seanet(ref["wav"]).transpose(1, 2)
        enc_tr = model.encoder.encoder_transformer(hidden).last_hidden_state.transpose(1, 2)
        latent = model.encoder(ref["wav"]).latents
        up = model.decoder.upsample(model.quantizer.decode(ref["codes"]))
        dec_tr = model.decoder.decoder_transformer(up.transpose(1, 2)).last_hidden_state.transpose(1, 2)
    assert (enc_tr - ref["encoder_transformer_out"]).abs().max() <= 1e-5
    assert (latent - ref["latent"]).abs().max() <= 1e-5
    assert (dec_tr - ref["decoder_transformer_out"]).abs().max() <= 1e-5


def test_decode_matches_reference_waveform(model, ref):
    with torch.no_grad():
        wav = model.decode(ref["codes"]).audio_values
        wav_all = model.decode(ref["codes_all"]).audio_values
    assert wav.shape == ref["decoded"].shape
    assert (wav - ref["decoded"]).abs().max() <= 1e-4
    assert (wav_all - ref["decoded_all"]).abs().max() <= 1e-4


def test_ragged_input_matches_once_padded_to_whole_frames(model, ref):
    """kyutai's encode zero-pads to whole frames before the encoder; padding the same way reproduces
    its codes (unpadded, transformers' per-layer padding changes the last, partial frame's latent)."""
    wav = ref["wav_ragged"]
    padded = torch.nn.functional.pad(wav, (0, -wav.shape[-1] % FRAME))
    with torch.no_grad():
        codes = model.encode(padded, num_quantizers=ref["codes_ragged"].shape[1]).audio_codes
        decoded = model.decode(ref["codes_ragged"]).audio_values
    assert torch.equal(codes, ref["codes_ragged"])
    assert (decoded - ref["decoded_ragged"]).abs().max() <= 1e-4


def test_fixture_detects_a_missing_rope_permutation(native, config, ref):
    """Sanity check of the fixture itself: converting without the q/k row permutation breaks parity."""
    converted = convert_mimi_state_dict(native, config)
    heads, head_dim = config.num_attention_heads, config.head_dim
    inverse = torch.argsort(torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)]))
    for key in [k for k in converted if k.endswith(("q_proj.weight", "k_proj.weight"))]:
        w = converted[key]
        converted[key] = w.reshape(heads, head_dim, -1)[:, inverse].reshape(w.shape)
    from transformers import MimiModel

    model = MimiModel(config).eval()
    model.load_state_dict(converted, strict=True)
    with torch.no_grad():
        wav = model.decode(ref["codes"]).audio_values
    assert (wav - ref["decoded"]).abs().max() > 1e-4


def test_converter_does_not_modify_input(native, config):
    before = {k: v.clone() for k, v in native.items()}
    convert_mimi_state_dict(native, config)
    assert native.keys() == before.keys()
    assert all(torch.equal(native[k], before[k]) for k in before)


def test_missing_key_is_named(native, config):
    broken = dict(native)
    del broken["encoder.model.3.conv.conv.weight"]
    with pytest.raises(MimiConversionError, match=r"missing.*encoder\.encoder_seanet\.layers\.3\.conv\.weight"):
        convert_mimi_state_dict(broken, config)


def test_missing_codebook_buffer_is_named(native, config):
    broken = dict(native)
    del broken["quantizer.rvq_rest.vq.layers.2._codebook.cluster_usage"]
    with pytest.raises(ValueError, match=r"acoustic_residual_vector_quantizer\.layers\.2\.codebook\.cluster_usage"):
        convert_mimi_state_dict(broken, config)


def test_extra_key_is_named(native, config):
    broken = dict(native, **{"encoder_transformer.transformer.layers.0.self_attn.bogus": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"no place.*layers\.0\.self_attn\.bogus"):
        convert_mimi_state_dict(broken, config)


def test_extra_layer_is_named(native, config):
    """A tensor whose name maps but has no slot (a third transformer layer) is reported as leftover."""
    extra = native["encoder_transformer.transformer.layers.0.linear1.weight"]
    broken = dict(native, **{"encoder_transformer.transformer.layers.2.linear1.weight": extra})
    with pytest.raises(ValueError, match=r"layers\.2\.linear1\.weight"):
        convert_mimi_state_dict(broken, config)


def test_wrong_config_reports_shapes(native, meta):
    wrong = MimiConfig(**dict(mimi_overrides_from_kyutai(meta["kyutai"]), codebook_size=128))
    with pytest.raises(ValueError, match=r"shape mismatches.*embed_sum"):
        convert_mimi_state_dict(native, wrong)


def test_legacy_names_are_accepted(native, config):
    """Names kyutai's loader still maps (`in_proj_weight`, `out_proj.weight`, encodec-style codebook
    buffers) convert to the same tensors."""
    legacy = {}
    renames = {".in_projs.0.weight": ".in_proj_weight", ".out_projs.0.weight": ".out_proj.weight",
               "._initialized": ".inited", ".cluster_usage": ".cluster_size", ".embedding_sum": ".embed_avg"}
    for key, value in native.items():
        for old, new in renames.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        legacy[key] = value
    a, b = convert_mimi_state_dict(native, config), convert_mimi_state_dict(legacy, config)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_missing_file_is_clear(tmp_path, config):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mimi_native(tmp_path / "nope.safetensors", config=config)


def test_non_safetensors_file_is_clear(tmp_path, config):
    bad = tmp_path / "tokenizer.safetensors"
    bad.write_bytes(b"PK\x03\x04 definitely not safetensors" * 10)
    with pytest.raises(MimiConversionError, match="not a readable safetensors"):
        load_mimi_native(bad, config=config)


def test_load_dtype(tmp_path, native, config, ref):
    path = tmp_path / "m.safetensors"
    save_file(native, str(path))
    model = load_mimi_native(path, dtype=torch.bfloat16, config=config)
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # RoPE frequencies stay float32; the codec still runs end to end in bfloat16.
    assert model.encoder.encoder_transformer.rotary_emb.inv_freq.dtype == torch.float32
    with torch.no_grad():
        codes = model.encode(ref["wav"].bfloat16(), num_quantizers=8).audio_codes
        wav = model.decode(ref["codes"]).audio_values
    assert codes.shape == ref["codes"].shape and wav.dtype == torch.bfloat16
    assert (wav.float() - ref["decoded"]).abs().max() < 0.05


def test_unrepresentable_kyutai_option_is_refused(meta):
    kyutai = json.loads(json.dumps(meta["kyutai"]))
    kyutai["transformer"]["gating"] = "silu"
    with pytest.raises(MimiConversionError, match="gating"):
        mimi_overrides_from_kyutai(kyutai)
