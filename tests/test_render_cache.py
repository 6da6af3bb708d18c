"""duplex_steer.speech.render_cache: renderings kept between runs are exactly the rendered ones, and only reused
under the engine version that made them."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

import duplex_steer.speech.aligned as aligned
import duplex_steer.speech.render_cache as render_cache
from duplex_steer.speech.aligned import render_corpus
from duplex_steer.speech.render_cache import RenderCache, Rendered

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not on PATH")
VOICES = ["flite:kal", "flite:slt"]
TEXTS = ["Cows, they give us milk.", "I have 3 cats."]  # flite reads "3" as a word we do not have: skipped


def counting_renders(monkeypatch) -> list[tuple[str, list[str]]]:
    """Record every rendering task that reaches the engine (in this process: workers=1)."""
    calls: list[tuple[str, list[str]]] = []
    real = aligned._render_task

    def task(t):
        calls.append((t[0], list(t[1])))
        return real(t)

    monkeypatch.setattr(aligned, "_render_task", task)
    return calls


def quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return render_corpus(*args, **kwargs)


def test_a_second_run_reads_the_same_renderings_and_renders_only_new_texts(tmp_path, monkeypatch) -> None:
    calls = counting_renders(monkeypatch)
    first = quietly(VOICES, TEXTS, workers=1, progress=False, cache=tmp_path)
    assert sorted(calls) == [(v, TEXTS) for v in VOICES]
    calls.clear()
    again = quietly(VOICES, TEXTS, workers=1, progress=False, cache=tmp_path)
    assert calls == []  # nothing rendered, the skipped text included
    assert list(again) == list(first) == [(v, TEXTS[0]) for v in VOICES]
    for key, utt in first.items():
        got = again[key]
        assert got.audio.dtype == np.float32 and np.array_equal(got.audio, utt.audio)
        assert got.words == utt.words and got.spans_s == utt.spans_s and got.voice == utt.voice
    more = quietly(VOICES, [*TEXTS, "Bees make honey."], workers=1, progress=False, cache=tmp_path)
    assert sorted(calls) == [(v, ["Bees make honey."]) for v in VOICES]
    assert np.array_equal(more[("flite:kal", TEXTS[0])].audio, first[("flite:kal", TEXTS[0])].audio)
    # without the cache the same renderings come out
    plain = quietly(VOICES, [*TEXTS, "Bees make honey."], workers=1, progress=False)
    assert all(np.array_equal(plain[k].audio, more[k].audio) and plain[k].spans_s == more[k].spans_s for k in plain)


def test_another_engine_version_or_a_cut_write_is_not_reused(tmp_path, monkeypatch) -> None:
    quietly(VOICES[:1], TEXTS[:1], workers=1, progress=False, cache=tmp_path)
    store = RenderCache(tmp_path)
    assert list(store.load("flite:kal", "flite")) == TEXTS[:1]
    assert store.load("flite:slt", "flite") == {}  # never written
    monkeypatch.setattr(render_cache, "engine_fingerprint", lambda engine: f"{engine} 99.0")
    assert store.load("flite:kal", "flite") == {}
    calls = counting_renders(monkeypatch)
    quietly(VOICES[:1], TEXTS[:1], workers=1, progress=False, cache=tmp_path)
    assert calls == [("flite:kal", TEXTS[:1])]  # rendered anew, and the files replaced under the new version
    assert list(store.load("flite:kal", "flite")) == TEXTS[:1]
    # a write cut between its two renames: the audio file of another write beside the old text file
    meta = (tmp_path / "flite_kal.json").read_text()
    store.save("flite:kal", "flite", {"Bees.": Rendered(np.zeros(10, np.float32), ["bees"], [(0.0, 0.1)])})
    (tmp_path / "flite_kal.json").write_text(meta)
    assert store.load("flite:kal", "flite") == {}


def test_skipped_texts_are_kept_as_skipped(tmp_path) -> None:
    store = RenderCache(tmp_path)
    store.save("flite:kal", "flite", {"I have 3 cats.": None,
                                      "Bees.": Rendered(np.arange(5, dtype=np.float32), ["bees"], [(0.0, 0.2)])})
    kept = store.load("flite:kal", "flite")
    assert kept["I have 3 cats."] is None
    assert np.array_equal(kept["Bees."].audio, np.arange(5, dtype=np.float32)) and kept["Bees."].spans_s == [(0.0, 0.2)]
