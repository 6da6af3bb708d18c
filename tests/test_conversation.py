"""converse(): recordings in any format, time-aligned model audio out, text decoding, prompts."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from duplex_steer import ConversationPrompt, converse
from duplex_steer.audio import FRAME_SAMPLES, AudioError, load_audio
from duplex_steer.engine.conversation import prompt_frames
from duplex_steer.engine.text import PieceTokenizer, decode_text, frame_pieces


def _noise(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    n = int(seconds * sr)
    wav = np.random.default_rng(seed).normal(0, 0.1, (n, channels)).astype(np.float32)
    return wav[:, 0] if channels == 1 else wav


def test_any_rate_and_channels_in_time_aligned_audio_out(tiny, tmp_path):
    path = tmp_path / "stereo16k.wav"
    sf.write(path, _noise(1.0, 16_000, channels=2), 16_000)
    result = converse(tiny, [path, (_noise(0.7, 24_000), 24_000)], greedy=True)
    assert result.input_samples == [24_000, int(0.7 * 24_000)]
    assert result.model_audio.shape == (2, 24_000)  # padded to the longest input
    T = -(-24_000 // FRAME_SAMPLES)
    assert result.user_codes.shape == (2, 8, T) and result.model_codes.shape == (2, 8, T)
    assert (result.model_codes[:, :, 0] == -1).all() and (result.model_codes[:, :, 1:] >= 0).all()
    assert np.abs(result.model_audio[:, :FRAME_SAMPLES]).max() == 0.0  # frame 0: no model frame yet
    assert len(result.pieces[0]) == T and result.pieces[0][0] == ""


def test_converse_matches_stepping_the_session_by_hand(tiny):
    wav = _noise(0.5, 24_000, seed=3)
    result = converse(tiny, wav, greedy=True)
    codes = tiny.codec.encode(wav[None])
    manual = tiny.session(batch_size=1, greedy=True).run(codes)
    assert torch.equal(manual.text, result.text_tokens)


def test_personaplex_prompt_shifts_the_recording_by_its_length(tiny):
    prompt = ConversationPrompt.personaplex(voice=(_noise(0.4, 24_000), 24_000), role="w5 w6 w7")
    frames = prompt_frames(tiny, prompt)
    n_voice, n_silence = 5, 6  # 0.4 s -> 5 frames; 0.5 s -> int(6.25) = 6 frames, as PersonaPlex
    assert len(frames) == n_voice + n_silence + len(tiny.tokenizer.encode("<system> w5 w6 w7 <system>")) + n_silence
    assert frames.user.shape == frames.audio.shape == (len(frames), 8) and frames.embeddings is None
    result = converse(tiny, _noise(0.5, 24_000), prompt=prompt, seed=0)
    assert result.frame_offset == len(frames)
    assert result.prompt == prompt.record() and result.prompt["text_prompt"] == "w5 w6 w7"
    assert (result.model_codes >= 0).all()  # every recording frame has a model frame after a prompt


def test_text_decoding_drops_pad_and_epad():
    tok = PieceTokenizer(["<EPAD>", "<BOS>", "<EOS>", "<PAD>", "\u2581hello", "\u2581wor", "ld"])
    stream = [-1, 3, 3, 0, 4, 3, 0, 5, 6, 3]
    assert decode_text(tok, stream) == "hello world"
    assert frame_pieces(tok, stream[:4]) == ["", "PAD", "PAD", "EPAD"]


@pytest.mark.parametrize("bad", [np.zeros(0, np.float32), np.array([0.1, np.nan], np.float32)])
def test_bad_recordings_get_a_clear_error(tiny, bad):
    with pytest.raises(AudioError):
        converse(tiny, (bad, 24_000))


def test_unreadable_file(tmp_path):
    f = tmp_path / "not_audio.wav"
    f.write_text("hello")
    with pytest.raises(AudioError, match="could not read"):
        load_audio(f)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")
