"""Optional ASR replies: a tiny random Whisper built offline, transcribing the right span; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zbb.asr import ASR, ASRError, load_asr
from zbb.cli import build_parser
from zbb.run_commands import run_config_from_args
from zbb.runner import RunConfig, read_results, run
from zbb.scenario import ScenarioRules

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def _tiny_whisper(folder, word_timestamps: bool):
    """A 1-layer, width-16 random Whisper with a 27-letter byte-level vocabulary, saved as a normal folder."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz\u0120")}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=SPECIALS[0],
                           bos_token=SPECIALS[0], eos_token=SPECIALS[0])
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])  # timestamp tokens
    ids = dict(zip(SPECIALS, tok.convert_tokens_to_ids(SPECIALS), strict=True))
    config = WhisperConfig(vocab_size=len(tok), num_mel_bins=80, encoder_layers=1, decoder_layers=1, d_model=16,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                           max_target_positions=32, decoder_start_token_id=ids["<|startoftranscript|>"],
                           pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
                           bos_token_id=ids["<|endoftext|>"])
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    gen = model.generation_config
    gen.num_beams, gen.max_new_tokens, gen._from_model_config = 1, 6, False  # fast: greedy, few tokens
    if word_timestamps:  # what real Whisper checkpoints carry for word-level timing
        gen.no_timestamps_token_id, gen.alignment_heads = ids["<|notimestamps|>"], [[0, 0]]
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr")
    return {"words": _tiny_whisper(root / "words", True), "plain": _tiny_whisper(root / "plain", False)}


def test_transcribes_with_word_times_on_the_callers_axis(whisper):
    asr = load_asr(whisper["words"], device="cpu")
    assert load_asr(whisper["words"], device="cpu") is asr  # loaded once
    wav = 0.1 * np.random.default_rng(0).standard_normal(24_000).astype(np.float32)  # 1 s at 24 kHz
    heard = asr.transcribe(wav, 24_000, offset_s=2.0)
    assert isinstance(heard.text, str) and asr.word_timestamps is True
    assert heard.chunks  # the random model says something
    for chunk in heard.chunks:
        assert chunk["text"].strip() and 2.0 <= chunk["timestamp"][0] <= chunk["timestamp"][1]


def test_a_model_without_word_timing_gives_text_only(whisper):
    asr = load_asr(whisper["plain"], device="cpu")
    heard = asr.transcribe(np.zeros(12_000, np.float32), 24_000)
    assert isinstance(heard.text, str) and heard.chunks is None
    assert asr.word_timestamps is False and "timestamps" in asr.word_timestamps_error


def test_clear_errors_for_unusable_models(tmp_path):
    with pytest.raises(ASRError, match="ASR model folder not found: .*nowhere"):
        load_asr(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ASRError, match="could not load ASR model .* as a folder"):
        load_asr(str(tmp_path / "empty"))
    with pytest.raises(ASRError, match="in the cache"):
        load_asr("nobody-here/no-such-asr-model")


def test_run_scores_the_transcript_of_the_reply_window(whisper, tiny, tmp_path, monkeypatch):
    calls = []
    original = ASR.transcribe

    def spy(self, wav, sample_rate=24_000, offset_s=0.0):
        calls.append((len(wav), sample_rate, offset_s))
        return original(self, wav, sample_rate, offset_s)

    monkeypatch.setattr(ASR, "transcribe", spy)
    rules = ScenarioRules(interrupt_after_frames=2, quiet_frames=2, max_wait_frames=4, reply_frames=3)
    config = RunConfig(model="tiny", conditions=["interrupt"], items=["hammers-false"], rules=rules, greedy=True,
                       asr_model=whisper["words"])
    (record,) = read_results(run(config, tmp_path, model=tiny, progress=False))
    samples, rate, offset = calls[0]
    assert len(calls) == 1 and rate == 24_000
    assert samples == (record["query_end_frame"] + 3 - record["onset_frame"]) * 1920  # query + reply window
    assert offset == pytest.approx(record["onset_frame"] * 0.08)  # scenario time of the query onset
    assert isinstance(record["reply"], str) and record["reply_text_stream"].startswith("w")
    assert record["asr_word_timing"] is True and record["stopped"] in (0, 1)
    assert json.loads((tmp_path / "config.json").read_text())["config"]["asr_model"] == whisper["words"]


def test_run_option():
    args = build_parser().parse_args(["run", "--out", "x", "--asr-model", "models/whisper"])
    assert run_config_from_args(args).asr_model == "models/whisper"
    assert run_config_from_args(build_parser().parse_args(["run", "--out", "x"])).asr_model is None


def test_fdb_import_times_words_with_the_asr(whisper, tiny, tmp_path):
    import soundfile as sf

    from zbb.fdb import import_fdb

    item = tmp_path / "fdb" / "1"
    item.mkdir(parents=True)
    sf.write(str(item / "input.wav"), np.zeros(16_000, np.float32), 16_000)
    (item / "interrupt.json").write_text(json.dumps([{"context": "", "interrupt": "", "timestamp": [0.2, 0.4]}]))
    config = RunConfig(model="tiny", conditions=["interrupt"], greedy=True, asr_model=whisper["words"])
    (record,) = read_results(import_fdb(tmp_path / "fdb", tmp_path / "out", config, model=tiny, progress=False))
    words = json.loads((tmp_path / "out" / "interrupt" / "1" / "words.json").read_text())
    assert record["word_timing"] == words["source"] == f"asr:{whisper['words']}"
    assert words["text"] == record["transcript"] and words["chunks"] == record["chunks"]
