"""PersonaPlex's conversation start: voices by name, .pt and WAV, absolute frames, defaults."""

from __future__ import annotations

import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from duplex_steer import converse, load
from duplex_steer.engine.prompt import (
    PERSONAPLEX_DEFAULT_ROLE,
    ConversationPrompt,
    build_prompt,
    check_voice_arg,
    prompt_frames,
    run_prompt,
)
from duplex_steer.engine.text import PAD
from duplex_steer.engine.voices import VoiceError, read_voice_file
from duplex_steer.loudness import integrated_loudness, k_weighting, normalize_loudness
from duplex_steer.steering import PerceptionVector, Steering
from duplex_steer.steering.compare import oracle, steer_recording

ROLE = "w5 w6 w7"
VOICE_FRAMES = 7


def _wav(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(24_000 * seconds)).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny PersonaPlex-shaped model whose checkpoint folder ships voices.tgz."""
    m = load("tiny-personaplex", device="cpu")
    m.folder = tmp_path_factory.mktemp("personaplex")
    return m


def save_voice_like_personaplex(model, wav: np.ndarray, path) -> None:
    """What PersonaPlex's LMGen saves after stepping a voice recording: the transformer's inputs at
    frames 0 .. F - 2 and its token ring [1, 17, max_delay + 3] after the F voice frames."""
    codes = model.codec.encode(wav[None])[0].T  # [F, 8]
    F = len(codes)
    frames = prompt_frames(model, ConversationPrompt(voice=wav, normalize_voice=False))
    sine = frames.user[0]
    inputs = []
    hook = model.layers[0].register_forward_pre_hook(lambda mod, args: inputs.append(args[0][:, 0].clone()))
    session = model.session(greedy=True)
    for t in range(F - 1):
        session.step(sine[None], text=torch.tensor([PAD]), audio=codes[t + 1][None])
    hook.remove()
    size = model.spec.max_delay + 3
    ring = torch.full((1, 17, size), 5)  # stale tokens where nothing is read
    last, after = (F - 1) % size, F % size
    ring[0, 0, last] = PAD
    ring[0, 1, last], ring[0, 2:9, last], ring[0, 2:9, after] = codes[F - 1, 0], codes[F - 2, 1:], codes[F - 1, 1:]
    ring[0, 9, last], ring[0, 10:17, last], ring[0, 10:17, after] = sine[0], sine[1:], sine[1:]
    torch.save({"embeddings": torch.stack(inputs)[:, None], "cache": ring}, path)


@pytest.fixture(scope="module")
def voice_wav():
    return _wav(VOICE_FRAMES * 0.08, seed=11)


@pytest.fixture(scope="module")
def voices(model, voice_wav):
    """voices.tgz beside the checkpoint with NATF0 (made from `voice_wav`) and VARM1."""
    staging = model.folder / "staging" / "voices"
    staging.mkdir(parents=True)
    save_voice_like_personaplex(model, voice_wav, staging / "NATF0.pt")
    save_voice_like_personaplex(model, _wav(0.4, seed=12), staging / "VARM1.pt")
    with tarfile.open(model.folder / "voices.tgz", "w:gz") as tar:
        tar.add(staging, arcname="voices")
    shutil.rmtree(model.folder / "staging")
    return model.folder / "voices.tgz"


def test_embeddings_replace_the_summed_input_embedding(model, voices):
    prompt = build_prompt(model, "NATF0", "none")
    voice = prompt.voice
    inputs = []
    hook = model.layers[0].register_forward_pre_hook(lambda mod, args: inputs.append(args[0][:, 0].clone()))
    session = model.session(greedy=True)
    frames = prompt_frames(model, prompt)
    run_prompt(session, frames)
    hook.remove()
    E = voice.embeddings.shape[0]
    assert torch.equal(torch.stack(inputs[:E])[:, 0], voice.embeddings)
    assert len(inputs) == len(frames)  # later frames are token-embedded (see the WAV-route test)
    # the first frame's output is the transformer run on embeddings[0] alone
    fresh = model.session(greedy=True)
    fresh.step(frames.user[0][None], input_embedding=voice.embeddings[0])
    manual = model.final_norm(model.run_layers(voice.embeddings[0].view(1, 1, -1), 0))[:, 0]
    torch.testing.assert_close(fresh.last_hidden, manual, rtol=0, atol=1e-5)


def test_a_voice_pt_reproduces_the_recording_it_was_made_from(model, voices, voice_wav):
    """PersonaPlex's .pt is a cache of the WAV route: replaying it gives the same conversation."""
    recording = _wav(1.0, seed=3)
    by_wav = converse(model, recording, greedy=True,
                      prompt=ConversationPrompt(voice=voice_wav, role=ROLE, normalize_voice=False))
    by_name = converse(model, recording, greedy=True, prompt=build_prompt(model, "NATF0", ROLE))
    assert by_name.frame_offset == by_wav.frame_offset
    assert torch.equal(by_name.text_tokens, by_wav.text_tokens) and torch.equal(by_name.model_codes, by_wav.model_codes)


def test_frame_offset_is_the_prompt_length_for_name_pt_and_wav(model, voices, tmp_path, voice_wav):
    role_ids = len(model.tokenizer.encode(f"<system> {ROLE} <system>"))
    wav_path = tmp_path / "voice.wav"
    sf.write(wav_path, _wav(0.72, seed=4), 24_000)
    pt = model.folder / "voices" / "VARM1.pt"
    for spec, voice_frames in [("NATF0", VOICE_FRAMES), (str(pt), 5), (str(wav_path), 9)]:
        prompt = build_prompt(model, spec, ROLE)
        result = converse(model, _wav(0.4, seed=5), prompt=prompt, seed=0)
        assert result.frame_offset == voice_frames + 6 + role_ids + 6 == len(prompt_frames(model, prompt))
        assert (result.model_codes >= 0).all()
        assert result.prompt["text_prompt"] == ROLE and len(result.prompt["voice_sha256"]) == 16
    assert result.prompt["voice_kind"] == "recording" and result.prompt["voice"] == str(wav_path)


def test_role_frames_follow_personaplex(model):
    frames = prompt_frames(model, ConversationPrompt(role=ROLE))
    ids = model.tokenizer.encode(f"<system> {ROLE} <system>")
    assert frames.text.tolist() == [PAD] * 6 + ids + [PAD] * 6
    assert (frames.user == frames.user[0]).all() and (frames.audio == frames.audio[0]).all()  # sine; silence
    assert not torch.equal(frames.user[0], frames.audio[0])


def test_defaults_personaplex_gets_its_voice_and_role_moshi_nothing(model, voices, tiny):
    prompt = build_prompt(model)
    assert prompt.voice_name == "NATF0" and prompt.role == PERSONAPLEX_DEFAULT_ROLE
    assert build_prompt(model, "none", "none") is None
    assert build_prompt(model, "VARM1", "none").role is None
    assert build_prompt(tiny) is None
    assert build_prompt(tiny, text_prompt=ROLE).role == ROLE
    no_voices = load("tiny-personaplex", device="cpu")
    assert build_prompt(no_voices).voice is None  # a checkpoint without voices: the role only
    with pytest.raises(VoiceError, match="voices.tgz"):
        build_prompt(no_voices, "NATF0")


def test_voice_arguments_are_checked_before_a_model_loads(tmp_path):
    check_voice_arg("NATF0")
    check_voice_arg(None)
    with pytest.raises(VoiceError, match="does not exist"):
        check_voice_arg(str(tmp_path / "missing.wav"))
    bad = tmp_path / "bad.pt"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(VoiceError, match="'embeddings' and 'cache'"):
        check_voice_arg(str(bad))
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(VoiceError, match="expected a .pt voice file or a recording"):
        check_voice_arg(str(text))


def test_wav_voices_are_normalised_to_minus_24_lufs(model):
    loud = _wav(1.0, seed=6, level=0.3)
    frames = prompt_frames(model, ConversationPrompt(voice=loud))
    expected = model.codec.encode(normalize_loudness(loud, 24_000, -24.0)[None])[0].T
    assert torch.equal(frames.audio[: len(expected)], expected)
    assert integrated_loudness(normalize_loudness(loud, 24_000, -24.0), 24_000) == pytest.approx(-24.0, abs=1e-6)


def test_loudness_matches_bs1770():
    (shelf_b, shelf_a), (high_b, high_a) = k_weighting(48_000)  # BS.1770's published 48 kHz coefficients
    np.testing.assert_allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-10)
    np.testing.assert_allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-10)
    np.testing.assert_allclose(high_a, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-10)
    t = np.arange(48_000 * 3) / 48_000
    assert integrated_loudness(np.sin(2 * np.pi * 997 * t), 48_000) == pytest.approx(-3.01, abs=0.01)


def test_steering_onsets_in_recording_frames_land_after_the_prompt(model, voices):
    g = torch.Generator().manual_seed(0)
    vector = PerceptionVector({1: torch.randn(64, generator=g)}, {"model": model.fingerprint(), "method": "test"})
    hidden: list[torch.Tensor] = []
    cmp = steer_recording(model, (_wav(1.0, 7), 24_000), Steering(vector, [1], alpha=50.0, span=3), oracle(0.4),
                          greedy=True, prompt=build_prompt(model, "NATF0", ROLE),
                          on_frame=lambda session, i: hidden.append(session.last_hidden.clone()))
    assert cmp.onset_frames == [5] and cmp.steered_frames == [5, 6, 7]
    differs = [bool((h[0] - h[1]).abs().max() > 1e-4) for h in hidden]
    assert differs[:5] == [False] * 5 and differs[5]  # unsteered and steered copies part at recording frame 5
    assert cmp.to_json(model.label)["prompt"]["voice"] == "NATF0"


def test_voice_pt_in_bfloat16_runs_on_a_float32_model(model, voices):
    voice = read_voice_file(model.folder / "voices" / "VARM1.pt")
    voice.embeddings = voice.embeddings.to(torch.bfloat16).float()
    result = converse(model, _wav(0.3, 8), prompt=ConversationPrompt(voice=voice), greedy=True)
    assert result.frame_offset == voice.frames + 6
