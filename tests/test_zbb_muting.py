"""The subject-muted control: only the subject is silenced, onsets kept, bad sources refused before writing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.speech.dialogues import FixtureError
from duplex_steer.speech.timing import Rendering
from duplex_steer.speech.zbb_audio import load_query_audio
from zbb import build, muting, rendering
from zbb.cli import main as zbb_main

RATE = 16_000
LEAD_S, GAP_S = 0.3, 0.08  # engine silence before the speech; pause after every word


class _WordBuzzTTS:
    """A stand-in engine with word times: each word a buzz of 40 ms per letter (its pitch from its length),
    then a pause."""

    name = "wordbuzz"
    voice = "low"

    def __init__(self, letter_s: float = 0.04, word_times: bool = True) -> None:
        self.letter_s, self.word_times = letter_s, word_times

    def render(self, text: str) -> Rendering:
        pieces, starts, t = [np.zeros(int(LEAD_S * RATE), np.float32)], [], LEAD_S
        for word in text.split():
            n = int(self.letter_s * len(word) * RATE)
            tone = 0.3 * np.sign(np.sin(2 * np.pi * (120 + 10 * len(word)) * np.arange(n) / RATE))
            pieces += [tone.astype(np.float32), np.zeros(int(GAP_S * RATE), np.float32)]
            starts.append(t)
            t += n / RATE + GAP_S
        end = t - GAP_S
        return Rendering(np.concatenate(pieces), RATE, (LEAD_S - 0.05, LEAD_S + 0.05), (end - 0.05, end),
                         starts if self.word_times else None)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict, Path, dict]:
    root = tmp_path_factory.mktemp("m")
    source, out = root / "wordbuzz-low", root / "muted"
    source_manifest = rendering.build_rendering(_WordBuzzTTS(), source, limit=2)
    return source, source_manifest, out, muting.mute_subjects(source, out, tts=_WordBuzzTTS())


def test_only_the_subject_is_silenced_and_the_timings_are_kept(built) -> None:
    source, source_manifest, out, manifest = built
    assert manifest["subject_muted"] is True
    pairs = list(zip(source_manifest["entries"], manifest["entries"], strict=True))
    assert {m["kind"] for s, m in pairs if m["file"].endswith(".flac")} == {"query", "buffered"}
    for s, m in pairs:
        if s["kind"] == "context":  # contexts are the same files
            assert m == s and (out / m["file"]).read_bytes() == (source / s["file"]).read_bytes()
            continue
        timing = ("first_word_onset_s", "speech_end_s", "text", "id", "n_samples")
        assert {k: m[k] for k in timing} == {k: s[k] for k in timing}
        original, rate = sf.read(source / s["file"], dtype="float32")
        muted, muted_rate = sf.read(out / m["file"], dtype="float32")
        assert muted_rate == rate and len(muted) == len(original)
        words = s["text"].split()
        query = next(it["text"] for it in build.read_items() if it["id"] == s["id"])
        subject = words.index(query.split()[0])  # 0 in a query, after "Um, excuse me," in a buffered one
        start, end = m["subject_muted_s"]
        ramp = int(muting.RAMP_S * rate) + 1
        # the subject's whole buzz lies inside the muted span, which ends before the next word's buzz
        subject_start = s["first_word_onset_s"] + sum(0.04 * len(w) + GAP_S for w in words[:subject])
        assert start <= subject_start + 0.01 and subject_start + 0.04 * len(words[subject]) <= end
        assert end <= subject_start + 0.04 * len(words[subject]) + GAP_S + 0.01
        a, b = int(round(start * rate)), int(round(end * rate))
        assert np.abs(original[max(0, a):b]).max() > 0.2 and np.all(muted[max(0, a):b] == 0.0)
        outside = np.ones(len(original), bool)
        outside[max(0, a - ramp):b + ramp] = False
        np.testing.assert_allclose(muted[outside], original[outside], atol=2.0**-22)


def test_runs_accept_the_muted_copy(built) -> None:
    source, _, out, _ = built
    items = build.read_items()[:2]
    rendering.validate_rendering(out, items, ["query", "context", "buffered"])
    heard, silenced = load_query_audio(source, items[0]["id"]), load_query_audio(out, items[0]["id"])
    assert len(heard) == len(silenced)  # the question starts and ends at the same frames
    first = int(0.04 * len(items[0]["text"].split()[0]) * 24_000)
    assert np.abs(heard[:first]).max() > 0.2 and np.abs(silenced[:first]).max() < 1e-3


def test_bad_sources_are_refused_before_anything_is_written(built, tmp_path) -> None:
    source, *_ = built
    with pytest.raises(FixtureError, match="gave no word times"):
        muting.mute_subjects(source, tmp_path / "a", tts=_WordBuzzTTS(word_times=False))
    with pytest.raises(FixtureError, match="not the one that built"):
        muting.mute_subjects(source, tmp_path / "b", tts=_WordBuzzTTS(letter_s=0.05))
    with pytest.raises(FixtureError, match="exists"):
        muting.mute_subjects(source, source, tts=_WordBuzzTTS())
    recordings = tmp_path / "rec"
    shutil.copytree(source, recordings)
    manifest = json.loads((recordings / "manifest.json").read_text())
    (recordings / "manifest.json").write_text(json.dumps({**manifest, "tts": "recordings"}))
    with pytest.raises(FixtureError, match="not a TTS-built rendering"):
        muting.mute_subjects(recordings, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_cli_wants_an_out_folder_and_nothing_else(built, capsys) -> None:
    source, *_ = built
    assert zbb_main(["build", "--mute-subject", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zbb: error: --mute-subject SOURCE") and err.count("\n") == 1
    assert zbb_main(["build", "--mute-subject", str(source), "--out", "x", "--tts", "festival"]) == 2
