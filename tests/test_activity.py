"""Ground-truth activity: energy against a noise floor, known turns, the text stream, onsets."""

from __future__ import annotations

import numpy as np

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.engine.text import EPAD, PAD
from duplex_steer.probes.activity import (
    bridge_gaps,
    classify_onset,
    detect_onsets,
    energy_activity,
    text_activity,
    turn_onsets,
    turns_activity,
)
from duplex_steer.speech.dialogues import load_dialogues


def _frames(*levels: float, noise: float = 0.0) -> np.ndarray:
    """One 80 ms frame per level: a 200 Hz tone of that amplitude (plus white noise)."""
    t = np.arange(FRAME_SAMPLES * len(levels)) / 24000
    amp = np.repeat(levels, FRAME_SAMPLES)
    rng = np.random.default_rng(0)
    return (amp * np.sin(2 * np.pi * 200 * t) + noise * rng.standard_normal(len(t))).astype(np.float32)


def test_energy_activity_against_silence_and_a_noise_floor():
    wav = _frames(0, 0, 0.3, 0.3, 0, 0, 0, 0, 0, 0.2, 0)
    assert energy_activity(wav, bridge=0).astype(int).tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0]
    # a noise floor at RMS 0.03 hides nothing louder than ~4x it, and is itself not speech
    noisy = _frames(0, 0, 0.3, 0.3, 0, 0, 0, 0, 0, 0.2, 0, noise=0.03)
    assert energy_activity(noisy, bridge=0).astype(int).tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0]
    assert energy_activity(noisy, n_frames=13).shape == (13,)


def test_bridging_word_gaps():
    active = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)
    assert bridge_gaps(active, 2).astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]


def test_turns_activity_matches_the_dialogue_set():
    d = load_dialogues(verify=False)[0]
    mask = d.user_speaking()
    np.testing.assert_array_equal(turns_activity(d.turns, len(mask)), mask)
    np.testing.assert_array_equal(turns_activity([{"start_s": t.start_s, "end_s": t.end_s} for t in d.turns],
                                                 len(mask)), mask)
    assert turn_onsets(d.turns, len(mask)) == [int(t.start_s * 24000) // FRAME_SAMPLES for t in d.turns]
    # and the energy detector agrees with the known timings on nearly every frame of this clean TTS audio
    energy = energy_activity(d.audio(), len(mask))
    assert (energy == mask).mean() > 0.97


def test_text_activity_and_onsets():
    tokens = np.array([-1, PAD, 17, PAD, PAD, PAD, PAD, EPAD, 9, PAD])
    assert text_activity(tokens, hold=2).astype(int).tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]
    assert text_activity(tokens[None], hold=0).shape == (1, 10)
    user = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1], bool)
    assert detect_onsets(user, min_silence=4) == [6, 17]  # frame 0 has no silence before; 11 too short a gap
    assert detect_onsets(user, min_silence=2, min_speech=2) == [6, 17]  # 11 is a one-frame blip
    model = text_activity(tokens, hold=2)
    assert classify_onset(model, 6, window=3) == "speaking" and classify_onset(model, 8, window=3) == "listening"


# A SentencePiece-like vocabulary: words span several pieces ("▁pen" "gu" "ins"), ids 0-3 are specials.
PIECES = ["<EPAD>", "<BOS>", "<EOS>", "<PAD>", "\u2581pen", "gu", "ins", "\u2581do", "\u2581yes", "\u2581ab", "so",
          "lu", "tely"]


def test_vocabulary_decides_the_rule():
    from duplex_steer.engine.text import PieceTokenizer
    from duplex_steer.probes.activity import PIECE_RULE, WORD_RULE, activity_rule

    assert activity_rule(PieceTokenizer(PIECES), len(PIECES)) == PIECE_RULE
    assert activity_rule(PieceTokenizer.numbered(100), 100) == WORD_RULE  # the organism / presets: whole words
    assert activity_rule(PieceTokenizer(PIECES[:5]), len(PIECES)) == WORD_RULE  # a short tokenizer is no crash
    assert activity_rule(PieceTokenizer(PIECES), len(PIECES), hold=9).hold == 9
    assert PIECE_RULE.hold == 6 and EPAD not in PIECE_RULE.silent_ids and EPAD in WORD_RULE.silent_ids


def test_piece_rule_holds_through_a_sentence_and_ends_at_a_pause():
    """Moshi-style stream: each word's pieces at its start, PAD while its audio plays, EPAD before the next word."""
    from duplex_steer.probes.activity import PIECE_RULE, WORD_RULE

    pen, gu, ins, do, yes, ab, so, lu, tely = range(4, 13)
    stream = ([PAD] * 3 + [EPAD, pen, gu, ins, PAD, PAD, PAD, EPAD, do, PAD, PAD, PAD, PAD, PAD, EPAD,
                           ab, so, lu, tely, PAD, PAD, PAD, PAD, PAD, PAD] + [PAD] * 8 + [EPAD, yes, PAD])
    speaking = PIECE_RULE.speaking(np.array(stream))
    first, last_piece = stream.index(EPAD), stream.index(tely)
    expected = np.zeros(len(stream), bool)
    expected[first : last_piece + 7] = True  # from the first EPAD through 6 PAD after the last piece
    expected[len(stream) - 3 :] = True  # EPAD announces the next word: speaking again
    np.testing.assert_array_equal(speaking, expected)
    # the old word rule breaks the same sentence into pieces (5 PADs after "do" read as silence)
    assert not WORD_RULE.speaking(np.array(stream))[first : last_piece].all()
    # causal: speaking_now on a window of recent frames agrees with the whole-stream mask at every frame
    history = np.array(stream)[None]
    now = [bool(PIECE_RULE.speaking_now(history[:, : t + 1])[0]) for t in range(len(stream))]
    assert now == speaking.tolist()


def test_model_activity_adds_the_audio_energy():
    from duplex_steer.probes.activity import PIECE_RULE, model_activity

    text = np.array([PAD] * 12)
    audio = _frames(0, 0, 0, 0, 0.3, 0.3, 0, 0, 0, 0, 0, 0)  # sound without words (laughter, breath)
    assert model_activity(text, PIECE_RULE).sum() == 0
    assert model_activity(text, PIECE_RULE, audio).astype(int).tolist() == [0] * 4 + [1, 1] + [0] * 6
    text[1] = 5  # a word whose text runs ahead of its sound
    assert model_activity(text, PIECE_RULE, audio)[1:8].all()
