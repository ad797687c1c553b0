"""The vocabulary that travels with a model: the word -> rank map of a data set's id scheme and the
tokenizer spec that turns raw review text into the padded ids the model takes.

`vocabulary.json` sits in every data set folder and is copied into every run, so a run folder is
enough to score raw text. For the offline corpus, encoding a review's text reproduces its stored ids
exactly; for the canonical Keras file the original tokenisation is unknown, so it is close, not exact.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.data import corpus
from tasks.errors import DataError
from tasks.storage import fs
from tasks.storage.layout import VOCABULARY_NAME

VOCABULARY_FORMAT = 1  # bump when the file's layout changes
LINE_BREAK = "<br />"  # IMDB's HTML line break, removed before tokenising
# A review's tail of this many characters per id usually holds maxlen known words (IMDB averages
# under 6 characters a word); when it does not, the whole review is tokenised.
TAIL_CHARS_PER_ID = 8


class TokenizerSpec(BaseModel):
    """Everything between a raw review and the model's input, spelled out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lowercase: bool = True
    removed: tuple[str, ...] = (LINE_BREAK,)  # each replaced by a space after lowercasing
    token_pattern: str = corpus.TOKEN_PATTERN.pattern  # words are this pattern's matches, in order
    pad_id: int = corpus.PAD_ID
    start_id: int = corpus.START_ID
    oov_id: int = corpus.OOV_ID
    index_from: int = corpus.INDEX_FROM  # word of rank r gets id r + index_from
    num_words: int  # ids >= num_words become oov_id
    maxlen: int
    padding: Literal["pre"] = "pre"  # pad_sequences' default: zeros in front
    truncating: Literal["pre"] = "pre"  # pad_sequences' default: a long review loses its beginning
    unknown_words: Literal["skip"] = "skip"  # words absent from the map are dropped, as in the stored data
    exact: bool  # True when encoding raw text reproduces the data set's stored ids


class Vocabulary(BaseModel):
    """The tokenizer spec and the word -> raw frequency rank map (1 = most frequent, Keras' layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = VOCABULARY_FORMAT
    source_kind: str
    spec: TokenizerSpec
    word_index: dict[str, int]


def build_vocabulary(source_kind: str, word_index_path: str | None, num_words: int, maxlen: int) -> Vocabulary | None:
    """The vocabulary of an imdb.npz: the word index downloaded beside it (Keras' tokenisation of the
    original reviews is unknown: not exact); None when the source has none (a bare mirror)."""
    if word_index_path is None:
        return None
    word_index = read_word_index(Path(word_index_path).read_bytes(), word_index_path)
    spec = TokenizerSpec(num_words=num_words, maxlen=maxlen, exact=False)
    return Vocabulary(source_kind=source_kind, spec=spec, word_index=word_index)


def text_vocabulary_of(source_kind: str, word_index: dict[str, int], num_words: int, maxlen: int) -> Vocabulary:
    """The vocabulary of a data set split from raw texts: its words ranked on its training texts
    (exact: encoding a review's text gives its stored ids)."""
    spec = TokenizerSpec(num_words=num_words, maxlen=maxlen, exact=True)
    return Vocabulary(source_kind=source_kind, spec=spec, word_index=word_index)


def read_word_index(raw: bytes, name: str) -> dict[str, int]:
    """A Keras-style word index (JSON object of word -> positive int rank); DataError otherwise."""
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{name}: not a JSON word index ({error})") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1 for rank in parsed.values()
    ):
        raise DataError(f"{name}: a word index maps words to ranks >= 1")
    return parsed


def vocabulary_bytes(vocabulary: Vocabulary) -> bytes:
    return fs.compact_json_bytes(vocabulary.model_dump(mode="json"))


def parse_vocabulary(raw: bytes, name: str) -> Vocabulary:
    """A vocabulary.json's content; DataError naming `name` when it is not one."""
    try:
        return Vocabulary.model_validate_json(raw)
    except ValidationError as error:
        raise DataError(f"{name}: not a vocabulary file ({error.errors()[0]['msg']})") from None


def store_vocabulary(vocabulary: Vocabulary, folder: str) -> str:
    """Writes `<folder>/vocabulary.json` once (verified); an identical file already there is kept."""
    uri = fs.join(folder, VOCABULARY_NAME)
    content = vocabulary_bytes(vocabulary)
    if fs.exists(uri) and fs.sha256_of(uri) == hashlib.sha256(content).hexdigest():
        return uri
    fs.write_verified(uri, content)
    return uri


def copy_into_run(dataset_uri: str, run_dir: Path) -> bool:
    """Copies the data set's vocabulary.json into a run's local folder; False when it has none."""
    uri = fs.join(dataset_uri, VOCABULARY_NAME)
    if not fs.exists(uri):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / VOCABULARY_NAME).write_bytes(fs.read_bytes(uri))
    return True


# The default token pattern, [a-z0-9]+(?:'[a-z0-9]+)*, at C speed: every byte but [a-z0-9'] becomes a
# space (a non-ASCII character is one "?" byte first), then so does every apostrophe without a letter
# or digit on both sides; what is left splits on spaces into exactly the pattern's tokens.
_SEPARATE = bytes(byte if byte in b"abcdefghijklmnopqrstuvwxyz0123456789'" else ord(" ") for byte in range(256))
_LONE_APOSTROPHE = re.compile(rb"'(?![a-z0-9])|(?<![a-z0-9])'")


def fast_words(text: str) -> list[str]:
    """`re.findall(data.TOKEN_PATTERN, text)` for text already lowercased, several times faster."""
    raw = text.encode("ascii", "replace").translate(_SEPARATE)
    if b"'" in raw:
        raw = _LONE_APOSTROPHE.sub(b" ", raw)
    return raw.decode("ascii").split()


@dataclass(frozen=True)
class TextEncoder:
    """Raw review text -> padded int32 ids (n, maxlen), following a vocabulary's spec."""

    spec: TokenizerSpec
    ids: dict[str, int]  # word -> model id (never 0), oov already applied
    pattern: re.Pattern

    @classmethod
    def of(cls, vocabulary: Vocabulary) -> TextEncoder:
        spec = vocabulary.spec
        ceiling = spec.num_words - spec.index_from  # ranks at or above it become oov
        ids = {
            word: rank + spec.index_from if rank < ceiling else spec.oov_id
            for word, rank in vocabulary.word_index.items()
        }
        return cls(spec, ids, re.compile(spec.token_pattern))

    def normalize(self, text: str) -> str:
        """Lowercased (when the spec says so), then markup removed."""
        text = text.lower() if self.spec.lowercase else text
        for removed in self.spec.removed:
            text = text.replace(removed, " ")
        return text

    def words(self, text: str) -> list[str]:
        """The spec's tokens of one review: lowercased first, then markup removed, then matched."""
        return self._tokens(self.normalize(text))

    def _tokens(self, normalized: str) -> list[str]:
        if self.pattern.pattern == corpus.TOKEN_PATTERN.pattern:
            return fast_words(normalized)
        return self.pattern.findall(normalized)

    def encode_one(self, text: str) -> list[int]:
        """The start id and each known word's id, truncated at the front to maxlen (not padded).

        Only the tail of a long review is tokenised when it holds maxlen known words: its first
        token, perhaps cut, is dropped, and every later token is the one the whole text gives.
        """
        normalized, maxlen = self.normalize(text), self.spec.maxlen
        tail_chars = TAIL_CHARS_PER_ID * maxlen
        if len(normalized) > tail_chars:
            kept = self._last_ids(self._tokens(normalized[-tail_chars:])[1:])
            if len(kept) == maxlen:
                return kept
        kept = self._last_ids(self._tokens(normalized))
        return kept if len(kept) == maxlen else [self.spec.start_id, *kept]

    def all_ids(self, text: str) -> list[int]:
        """The start id and every known word's id of the whole review, untruncated: the lengths and
        token counts the data checks describe (scoring itself needs only the last maxlen)."""
        return [self.spec.start_id, *filter(None, map(self.ids.get, self.words(text)))]

    def _last_ids(self, words: list[str]) -> list[int]:
        """The ids of the last maxlen known words, in order; the words before them are never looked up."""
        kept = list(itertools.islice(filter(None, map(self.ids.get, reversed(words))), self.spec.maxlen))
        kept.reverse()
        return kept

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Start id, each known word's id, then front padding and truncation to maxlen."""
        maxlen = self.spec.maxlen
        padded = np.full((len(texts), maxlen), self.spec.pad_id, dtype=np.int32)
        for row, text in enumerate(texts):
            encoded = self.encode_one(text)
            padded[row, maxlen - len(encoded) :] = encoded
        return padded
