"""Native checkpoints shaped like the real repositories: replicas loaded through the hub-cache path.

The replicas (duplex_steer.engine.replica) have the real file names, tensor names, shapes and dtypes,
random values and small widths; they prove the loading path, never a research claim.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tarfile

import pytest
import torch

from duplex_steer import LoadError, load
from duplex_steer.engine.convert import convert_lm_state_dict, native_lm_layout
from duplex_steer.engine.native import (
    NATIVE_MIMI,
    NATIVE_TOKENIZER,
    NativeLoadError,
    architecture_from_shapes,
    native_spec,
)
from duplex_steer.engine.replica import (
    MIMI_LAYOUT,
    PERSONAPLEX_VOICES,
    released_lm_layout,
    replica_spec,
    write_replica,
)
from duplex_steer.engine.safetensors_io import TensorReader, read_header
from duplex_steer.engine.spec import PRESETS

REPO_ID = {"moshi": "kyutai/moshiko-pytorch-bf16", "personaplex": "nvidia/personaplex-7b-v1"}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("replicas")
    return {kind: write_replica(root / kind, kind=kind, size="small") for kind in ("moshi", "personaplex")}


def _as_hub_cache(folder, hf_home, repo_id, drop=()):
    """Lay `folder` out as huggingface_hub's cache (models--owner--name/snapshots/<rev>, refs/main)."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for f in folder.iterdir():
        if f.name not in drop:
            (snapshot / f.name).symlink_to(f)
    return snapshot


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


def test_replica_files_are_the_real_layout(replicas):
    moshi, pplex = replicas["moshi"], replicas["personaplex"]
    assert sorted(p.name for p in moshi.iterdir()) == sorted(
        ["README.md", "config.json", "model.safetensors", NATIVE_MIMI, NATIVE_TOKENIZER, "duplex_steer.json"])
    header = read_header(moshi / "model.safetensors")
    assert {k: v.shape for k, v in header.items()} == released_lm_layout(replica_spec("moshi", "small"))
    assert "transformer.layers.0.self_attn.in_proj_weight" in header
    assert {v.dtype for v in header.values()} == {torch.bfloat16}
    mimi = read_header(moshi / NATIVE_MIMI)
    reference = json.loads(MIMI_LAYOUT.read_text())["tensors"]  # moshi 0.2.13's names; the release fuses q/k/v
    assert sorted(v.shape for v in mimi.values()) == sorted(tuple(s) for s in reference.values())
    assert "encoder_transformer.transformer.layers.0.self_attn.in_proj_weight" in mimi
    assert {v.dtype for v in mimi.values()} == {torch.float32} and len(mimi) == 318
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(moshi / NATIVE_TOKENIZER))
    assert sp.get_piece_size() == 32000
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert sum(not sp.id_to_piece(i).startswith("\u2581") for i in range(4, 32000)) > 1000  # subword pieces
    with tarfile.open(pplex / "voices.tgz") as tar:
        assert sorted(tar.getnames()) == sorted(f"voices/{n}.pt" for n in PERSONAPLEX_VOICES)
        voice = torch.load(tar.extractfile("voices/NATF2.pt"), weights_only=True)
    assert voice["embeddings"].shape == (20, 1, 1, 64) and voice["cache"].shape == (1, 17, 4)


def test_full_size_layout_matches_the_real_file_size():
    """The 7B layout is the real repository's: 15,375,458,304 bytes of bfloat16 tensors (the real file,
    15,375,511,472 bytes, adds its header); the released Mimi is 384,605,572 bytes of float32."""
    spec = replica_spec("moshi", "full")
    assert sum(torch.Size(s).numel() for s in released_lm_layout(spec).values()) * 2 == 15_375_458_304
    assert len(native_lm_layout(spec)) == 439  # moshi 0.2.13's state dict; the release fuses the depformer's
    assert len(released_lm_layout(spec)) == 439 - 6 * (2 * 8 - 2)  # per-step projections: 355 tensors
    mimi = json.loads(MIMI_LAYOUT.read_text())["tensors"]
    assert sum(torch.Size(s).numel() for s in mimi.values()) * 4 == 384_605_572


@pytest.mark.parametrize("dep_q", [8, 16])
def test_architecture_without_config_is_read_from_shapes(dep_q):
    full = dataclasses.replace(PRESETS["full"], dep_q=dep_q)
    shapes = native_lm_layout(full)
    assert native_spec({}, shapes, "repo") == full
    assert native_spec({}, released_lm_layout(full), "repo") == full
    found = architecture_from_shapes(shapes)
    assert found["hidden_scale"] == 4.125 and found["depformer_dim_feedforward"] == 4224


@pytest.mark.parametrize("kind", ["moshi", "personaplex"])
def test_replica_loads_from_the_hub_cache_offline(kind, replicas, offline_hub):
    _as_hub_cache(replicas[kind], offline_hub, REPO_ID[kind])
    model = load(REPO_ID[kind], device="cpu", dtype=torch.bfloat16)
    assert model.spec == replica_spec(kind, "small")
    assert model.codec is not None and model.tokenizer.vocab_size() == 32000
    assert next(model.hf.decoder.parameters()).dtype == torch.bfloat16
    assert model.is_random and "pipeline check" in model.label  # the replica labels itself
    assert not [n for n, t in [*model.hf.named_parameters(), *model.hf.named_buffers()] if t.is_meta]


def test_lean_loading_equals_the_in_memory_conversion(replicas):
    """Tensor by tensor from the file == converting the whole state dict at once."""
    folder = replicas["personaplex"]
    spec = replica_spec("personaplex", "small")
    with TensorReader(folder / "model.safetensors") as reader:
        native = {k: reader.get(k) for k in reader.keys()}
    expected = convert_lm_state_dict(native, spec)
    model = load(folder, device="cpu", dtype=torch.bfloat16)
    got = model.hf.state_dict()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_released_fused_layout_loads_as_the_split_one(tmp_path):
    """The released files fuse each layer's per-step projections (`in_proj_weight` = the steps'
    `in_projs.{i}` stacked, step-major, as moshi 0.2.13's load hook views them): same model either way."""
    from safetensors.torch import save_file

    split = write_replica(tmp_path / "split", kind="personaplex", size="small", layout="split")
    with TensorReader(split / "model.safetensors") as reader:
        native = {k: reader.get(k) for k in reader.keys()}
    fused = {}
    for name, value in native.items():
        for part, old in (("self_attn.in_projs.", "self_attn.in_proj_weight"),
                          ("self_attn.out_projs.", "self_attn.out_proj.weight")):
            if part in name:
                prefix = name.split(part)[0]
                steps = sum(1 for k in native if k.startswith(prefix + part))
                fused[prefix + old] = torch.cat([native[f"{prefix}{part}{i}.weight"] for i in range(steps)])
                break
        else:
            fused[name] = value
    released = tmp_path / "released"
    shutil.copytree(split, released)
    save_file(fused, released / "model.safetensors")
    assert "depformer.layers.0.self_attn.in_proj_weight" in read_header(released / "model.safetensors")
    a = load(split, device="cpu", dtype=torch.float32).hf.state_dict()
    b = load(released, device="cpu", dtype=torch.float32).hf.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_small_replica_without_config_names_what_differs(replicas, offline_hub):
    _as_hub_cache(replicas["moshi"], offline_hub, REPO_ID["moshi"], drop=("config.json",))
    with pytest.raises(LoadError, match=r"not the 7B Moshi's: dim 64 \(7B: 4096\), num_layers 2 \(7B: 32\)") as err:
        load(REPO_ID["moshi"], device="cpu")
    assert "num_heads" in str(err.value)  # what a config.json must add


def test_checkpoint_with_wrong_shapes_fails_before_allocating(replicas, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(replicas["moshi"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["depformer_num_layers"] = 2
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(LoadError, match="tensors missing"):
        load(folder, device="cpu")


def test_tokenizer_smaller_than_the_text_vocabulary_is_a_clear_error(replicas, tmp_path):
    from duplex_steer.engine.replica import write_tokenizer

    folder = tmp_path / "small-tok"
    shutil.copytree(replicas["moshi"], folder)
    write_tokenizer(folder / NATIVE_TOKENIZER, size=8000)
    with pytest.raises(LoadError, match="8000 pieces but the model's text vocabulary has 32000"):
        load(folder, device="cpu")


def test_truncated_weights_are_a_clear_error(replicas, tmp_path):
    folder = tmp_path / "trunc"
    shutil.copytree(replicas["moshi"], folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="truncated or corrupt"):
        load(folder, device="cpu")


def test_native_spec_error_type():
    with pytest.raises(NativeLoadError, match="not a kyutai"):
        native_spec({}, {"foo": (1,)}, "x")


def test_personaplex_replica_converses_with_its_default_voice_and_role(replicas):
    """The PersonaPlex replica from the hub layout: voices.tgz found and unpacked, NATF0 + the teacher
    role by default, the recording starting right after the prompt (absolute frames)."""
    import numpy as np

    from duplex_steer import converse
    from duplex_steer.engine.prompt import build_prompt

    model = load(replicas["personaplex"], device="cpu", dtype=torch.float32)
    prompt = build_prompt(model)
    record = prompt.record()
    assert "NATF0" in json.dumps(record) and "teacher" in json.dumps(record)
    wav = np.random.default_rng(0).standard_normal(24_000).astype(np.float32) * 0.05
    result = converse(model, wav, prompt=prompt, seed=0)
    with tarfile.open(replicas["personaplex"] / "voices.tgz") as tar:
        voice_frames = len(torch.load(tar.extractfile("voices/NATF0.pt"), weights_only=True)["embeddings"]) + 1
    role_tokens = len(model.tokenizer.encode(f"<system> {record['text_prompt']} <system>"))
    assert result.frame_offset == voice_frames + 6 + role_tokens + 6  # voice, 0.5 s, role, 0.5 s
    assert result.text_tokens.shape[1] == 13 and (result.text_tokens >= 0).all()


def test_model_activity_rule_follows_the_vocabulary(replicas):
    """Moshi's SentencePiece stream (subword pieces, PAD/EPAD) gets the piece rule; the organism's
    one-token-per-word vocabulary keeps the word rule."""
    from duplex_steer.probes.activity import PIECE_RULE, WORD_RULE, model_activity_rule

    assert model_activity_rule(load(replicas["moshi"], device="cpu")) == PIECE_RULE
    assert model_activity_rule(load("organism")) == WORD_RULE
