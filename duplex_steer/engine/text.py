"""Text tokenizers for the model's inner-monologue stream, and decoding of per-frame text tokens.

Ids 0-3 are special in Moshi's 32k sentencepiece vocabulary: 0 = EPAD (end of padding, a word
follows), 1 = BOS, 2 = EOS, 3 = PAD (the model is silent or still speaking the last word).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

EPAD, BOS, EOS, PAD = 0, 1, 2, 3
SPECIAL_NAMES = {EPAD: "EPAD", BOS: "BOS", EOS: "EOS", PAD: "PAD"}
WORD_START = "\u2581"  # sentencepiece's word-boundary marker


class TextTokenizer(Protocol):
    """What the engine needs from a tokenizer: pieces for ids, and ids for a prompt."""

    def id_to_piece(self, token: int) -> str: ...

    def encode(self, text: str) -> list[int]: ...


class SentencePieceTokenizer:
    """Moshi's and PersonaPlex's sentencepiece model (tokenizer_spm_32k_3.model)."""

    def __init__(self, path: str | Path):
        import sentencepiece

        self.path = str(path)
        self._sp = sentencepiece.SentencePieceProcessor(model_file=self.path)

    def id_to_piece(self, token: int) -> str:
        return self._sp.id_to_piece(int(token))

    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text))


class PieceTokenizer:
    """A fixed list of pieces (sentencepiece style, U+2581 marks a word start); for small models.

    `encode` is greedy whole-word lookup: each word must be a piece, else its characters are.
    """

    def __init__(self, pieces: Sequence[str]):
        self.pieces = list(pieces)
        self._index = {p: i for i, p in enumerate(self.pieces)}

    @classmethod
    def numbered(cls, size: int) -> PieceTokenizer:
        """Specials then placeholder words w4, w5, ...: what a random-weight model can print."""
        return cls([f"<{SPECIAL_NAMES[i]}>" for i in range(4)] + [f"{WORD_START}w{i}" for i in range(4, size)])

    @classmethod
    def load(cls, path: str | Path) -> PieceTokenizer:
        return cls(json.loads(Path(path).read_text())["pieces"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"pieces": self.pieces}, ensure_ascii=False))

    def id_to_piece(self, token: int) -> str:
        return self.pieces[int(token)] if 0 <= int(token) < len(self.pieces) else f"<{int(token)}>"

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in text.split():
            piece = WORD_START + word
            if piece in self._index:
                ids.append(self._index[piece])
            else:
                ids.extend(self._index[c] for c in word if c in self._index)
        return ids


def frame_pieces(tokenizer: TextTokenizer, tokens: Iterable[int]) -> list[str]:
    """One string per frame: the piece, or EPAD / BOS / EOS / PAD, or '' where no token (-1)."""
    out = []
    for tok in tokens:
        tok = int(tok)
        if tok < 0:
            out.append("")
        elif tok in SPECIAL_NAMES:
            out.append(SPECIAL_NAMES[tok])
        else:
            out.append(tokenizer.id_to_piece(tok))
    return out


def decode_text(tokenizer: TextTokenizer, tokens: Iterable[int]) -> str:
    """The words of a per-frame text stream: PAD / EPAD / BOS / EOS and -1 dropped, pieces joined."""
    pieces = [tokenizer.id_to_piece(int(t)) for t in tokens if int(t) >= 0 and int(t) not in SPECIAL_NAMES]
    return "".join(pieces).replace(WORD_START, " ").strip()
