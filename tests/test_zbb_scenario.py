"""Scenario reply window: only words that start after the query (less the tolerance) are the reply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplex_steer.engine.text import EPAD, PAD, PieceTokenizer
from duplex_steer.probes.activity import PIECE_RULE, WORD_RULE
from zbb.scenario import Scenario, ScenarioRules
from zbb.scoring import REPLY_START_TOLERANCE_FRAMES, is_correct, iwor

WORDS = "music is not boring and yes penguins do no they right sure".split()
TOKENIZER = PieceTokenizer(["<EPAD>", "<BOS>", "<EOS>", "<PAD>"] + ["\u2581" + w for w in WORDS] + ["\u2581pen", "gu", "ins"])
ID = {w: 4 + k for k, w in enumerate(WORDS)} | {"\u2581pen": 4 + len(WORDS), "gu": 5 + len(WORDS), "ins": 6 + len(WORDS)}
PENGUINS_TRUE = {"id": "penguins-true", "subject": "penguins", "aliases": ["penguin", "penguins"], "truth": True}
START, ONSET, QUERY_FRAMES, REPLY_FRAMES = 7, 30, 10, 12  # the scenario starts at session frame 7 (a prompt before it)


def _scenario(said: dict[int, str]) -> Scenario:
    """A query from frame 30 to 40 (absolute), the reply heard until 52; `said` = frame -> piece."""
    s = Scenario(PENGUINS_TRUE, "interrupt", 0, np.zeros(1920, np.float32), np.ones(1920 * QUERY_FRAMES, np.float32),
                 ScenarioRules(reply_frames=REPLY_FRAMES), start_frame=START)
    s.text = {f: PAD for f in range(START, ONSET + QUERY_FRAMES + REPLY_FRAMES)}
    s.text.update({f: ID[p] for f, p in said.items()})
    s.place_query(ONSET)
    return s


def _monologue(first: int) -> dict[int, str]:
    return {first + k: w for k, w in enumerate("music is not boring and yes penguins do".split())}


def test_a_monologue_with_cue_words_and_the_subject_before_the_reply_never_counts():
    end = ONSET + QUERY_FRAMES
    s = _scenario({**_monologue(ONSET - 2), **{end + 1: "yes", end + 2: "they", end + 3: "do"}})  # "do" at end - 5
    assert s.query_end_frame == end and s.reply_window == (end - REPLY_START_TOLERANCE_FRAMES, end + REPLY_FRAMES)
    assert s.reply(TOKENIZER) == "yes they do"
    assert is_correct(s.item, s.reply(TOKENIZER)) and not iwor(s.item, s.reply(TOKENIZER))
    assert s.said_during_query(TOKENIZER) == "not boring and yes penguins do"  # from the onset, for reading only
    # the same stream read from the onset (the old rule): "not" would have decided, and the subject counted
    assert "not" in " ".join(w["text"] for w in s.word_chunks(TOKENIZER))
    # a monologue that never stops and says nothing else: no reply, so incorrect, no subject
    s = _scenario({f: w for f, w in enumerate("right not penguins no yes right".split(), start=end - 10)})
    assert s.reply(TOKENIZER) == ""


@pytest.mark.parametrize(("start", "counted"), [(-4, True), (-1, True), (0, True), (-5, False), (-8, False)])
def test_a_reply_overlapping_the_querys_end_counts_within_the_tolerance(start, counted):
    end = ONSET + QUERY_FRAMES
    s = _scenario({end + start: "yes", end + start + 1: "penguins"})
    assert (s.reply(TOKENIZER) == "yes penguins") is counted
    if not counted:  # only the words that start in the window are left
        assert s.reply(TOKENIZER) == ("penguins" if start + 1 >= -REPLY_START_TOLERANCE_FRAMES else "")


def test_a_word_of_several_pieces_begun_before_the_window_stays_out():
    end = ONSET + QUERY_FRAMES
    pieces = {end - 6: "\u2581pen", end - 5: "gu", end - 4: "ins", end - 3: "sure"}  # "penguins" starts 2 frames early
    assert _scenario(pieces).reply(TOKENIZER) == "sure"
    late = {end - 4: "\u2581pen", end - 3: "gu", end - 2: "ins"}
    assert _scenario(late).reply(TOKENIZER) == "penguins"


def test_the_window_is_on_absolute_frames_and_times_on_the_scenarios_axis():
    end = ONSET + QUERY_FRAMES
    s = _scenario({end: "yes"})
    (word,) = [w for w in s.words(TOKENIZER) if w["frame"] == end]
    assert word["timestamp"][0] == pytest.approx((end - START) * 0.08)
    assert s.reply(TOKENIZER, chunks=[word]) == "yes"
    assert s.reply(TOKENIZER, chunks=[{**word, "timestamp": [(end - START - 5) * 0.08, 0.0]}]) == ""  # ASR words too


def test_query_placement_follows_the_models_activity_rule():
    """A subword stream pauses 5 PAD frames inside a sentence: the piece rule still hears speech there."""
    rules = ScenarioRules(interrupt_after_frames=8, quiet_frames=2, max_wait_frames=30, reply_frames=4)
    stream = [EPAD, 4, 5, PAD, PAD, PAD, PAD, PAD, EPAD, 6, PAD, PAD, PAD, PAD, PAD, EPAD, 7, 8]
    onsets = {}
    for rule in (WORD_RULE, PIECE_RULE):
        s = Scenario(PENGUINS_TRUE, "interrupt", 0, np.zeros(0, np.float32), np.ones(1920, np.float32), rules,
                     activity=rule)
        for t in range(len(stream)):
            if s.observe(t, np.array(stream[max(0, t - 10) : t + 1])):
                onsets[rule.name] = t + 1
                break
    assert onsets == {PIECE_RULE.name: 8, WORD_RULE.name: 12}  # 8 speaking frames; the word rule counts fewer
    assert Scenario(PENGUINS_TRUE, "interrupt", 0, np.zeros(0), np.zeros(0), ScenarioRules(hold=5)).activity.hold == 5


@pytest.mark.parametrize("rendering", [None, "festival-slt-hts"])
def test_a_query_encoded_once_gives_each_placement_the_codes_of_its_whole_stream(rendering):
    """The runner encodes a query once per item and splices it in after the context (zbb.runner): for the
    organism's causal codec that must equal encoding each scenario's whole stream, code for code."""
    from duplex_steer.engine.tag_codec import load_small_codec
    from duplex_steer.organism.checkpoint import WEIGHTS_DIR
    from zbb import load_items
    from zbb.build import load_buffered_query_audio, load_context_audio, load_query_audio
    from zbb.rendering import RENDERINGS_DIR

    codec = load_small_codec(WEIGHTS_DIR)
    audio = None if rendering is None else RENDERINGS_DIR / rendering
    rng = np.random.default_rng(0)
    for item in load_items()[:6]:
        for kind, query in (("interrupt", load_query_audio(audio, item["id"])),
                            ("buffered", load_buffered_query_audio(audio, item["id"]))):
            s = Scenario(item, kind, 0, load_context_audio(audio, item["context"]), query, ScenarioRules(),
                         start_frame=3)
            s.replan(codec)
            before, spliced = s.codes, s.query_codes(codec)
            for lead in (codec.context_frames, *rng.integers(codec.context_frames + 1, 125, 2)):
                s.codes, s.onset_frame = before, None
                s.place_query(s.start_frame + s.context_frames + int(lead))
                assert s.silent_lead_frames() == lead
                s.replan(codec)
                whole = s.codes
                s.codes = before
                s.replan(codec, spliced)
                assert torch.equal(s.codes, whole) and s.codes.shape[1] * 1920 >= len(s.wave)
    s.codes, s.onset_frame = before, None
    s.place_query(s.start_frame + s.context_frames + codec.context_frames - 1)  # too little silence: refused
    with pytest.raises(ValueError, match="silent frames"):
        s.replan(codec, spliced)
