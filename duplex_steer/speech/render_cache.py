"""A folder that keeps aligned renderings between runs, so a second training does not render its speech again.

Rendering the organism's speech (about 12,000 sentences in 8 voices) takes about 15 minutes on 2 cores, the
same every time: each rendering depends only on its text, its voice and the engine. `RenderCache` keeps
them per voice in `<voice>.safetensors` (the 24 kHz float32 audio, exactly as rendered) plus
`<voice>.json` (texts, words, word spans, and which texts the engine could not align). A voice's files are
used only while the engine's version and `CACHE_FORMAT` match what wrote them; otherwise that voice is
rendered anew and its files replaced. Used by `render_corpus(..., cache=folder)`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

CACHE_FORMAT = "duplex-steer-render-cache-1"


class Rendered(NamedTuple):
    """One cached rendering: 24 kHz float32 audio, its words and each word's (start_s, end_s)."""

    audio: np.ndarray
    words: list[str]
    spans_s: list[tuple[float, float]]


@cache
def engine_fingerprint(engine: str) -> str:
    """The engine and its version ("flite 2.2"): a cached rendering is reused only under the same one."""
    from .engines import festival_version, flite_version
    from .tts import espeak_version

    version = {"flite": flite_version, "festival": festival_version, "espeak-ng": espeak_version}[engine]()
    return f"{engine} {version}"


def _slug(voice_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", voice_id)


class RenderCache:
    """Aligned renderings by (voice id, text) in `folder` (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _paths(self, voice_id: str) -> tuple[Path, Path]:
        slug = _slug(voice_id)
        return self.folder / f"{slug}.json", self.folder / f"{slug}.safetensors"

    def load(self, voice_id: str, engine: str) -> dict[str, Rendered | None]:
        """{text: (audio, words, spans), or None where the engine's words could not be aligned} for
        `voice_id` of `engine`; empty when nothing is cached or it was written under another engine version
        or format."""
        from safetensors import safe_open
        from safetensors.numpy import load_file

        meta_path, audio_path = self._paths(voice_id)
        if not meta_path.exists() or not audio_path.exists():
            return {}
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != CACHE_FORMAT or meta.get("voice") != voice_id or \
                meta.get("engine") != engine_fingerprint(engine):
            return {}
        with safe_open(str(audio_path), "np") as f:
            if (f.metadata() or {}).get("token") != meta.get("token"):  # a write cut between its two renames
                return {}
        audio = load_file(str(audio_path))
        out: dict[str, Rendered | None] = {}
        for i, entry in enumerate(meta["entries"]):
            if entry.get("skipped"):
                out[entry["text"]] = None
            else:
                spans = [(float(a), float(b)) for a, b in entry["spans_s"]]
                out[entry["text"]] = Rendered(audio[str(i)], list(entry["words"]), spans)
        return out

    def save(self, voice_id: str, engine: str, renderings: dict[str, Rendered | None]) -> None:
        """Write every rendering of `voice_id` in `renderings` beside what is cached already (a later write of
        the same text wins); written to temporary files, then renamed."""
        from safetensors.numpy import save_file

        merged = {**self.load(voice_id, engine), **renderings}
        self.folder.mkdir(parents=True, exist_ok=True)
        entries, arrays = [], {}
        for i, (text, rendered) in enumerate(merged.items()):
            if rendered is None:
                entries.append({"text": text, "skipped": True})
            else:
                entries.append({"text": text, "words": list(rendered.words),
                                "spans_s": [list(span) for span in rendered.spans_s]})
                arrays[str(i)] = np.ascontiguousarray(rendered.audio, dtype=np.float32)
        token = uuid.uuid4().hex  # ties the two files of one write together
        meta = {"format": CACHE_FORMAT, "voice": voice_id, "engine": engine_fingerprint(engine),
                "token": token, "entries": entries}
        meta_path, audio_path = self._paths(voice_id)
        tmp_audio, tmp_meta = audio_path.with_suffix(".tmp.safetensors"), meta_path.with_suffix(".tmp.json")
        save_file(arrays, str(tmp_audio), metadata={"token": token})
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_audio, audio_path)
        os.replace(tmp_meta, meta_path)
