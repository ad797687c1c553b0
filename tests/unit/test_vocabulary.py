"""The vocabulary artifact: the tokenizer spec, encoding raw text, and the canonical word index's download."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tasks.config import DataConfig
from tasks.data import corpus, sources, vocabulary
from tasks.data.vocabulary import TextEncoder, TokenizerSpec, Vocabulary
from tasks.errors import ChecksumMismatch, DataError
from tasks.storage import layout
from tests.helpers import prepare_source, sha256, write_imdb_npz

WORDS = {"the": 1, "film": 2, "great": 3, "awful": 4, "plot": 5}  # ranks: num_words 6 keeps ranks 1-2 only


def encoder(num_words: int = 6, maxlen: int = 5) -> TextEncoder:
    spec = TokenizerSpec(num_words=num_words, maxlen=maxlen, exact=True)
    return TextEncoder.of(Vocabulary(source_kind="offline", spec=spec, word_index=WORDS))


def test_encoding_lowercases_drops_line_breaks_skips_unknown_words_and_marks_rare_ones_oov():
    ids = encoder().encode(["The FILM<br />was great"])
    # start 1; the -> 1 + 3, film -> 2 + 3; "was" unknown: skipped; great has rank 3 >= 6 - 3: oov 2
    assert ids.tolist() == [[0, 1, 4, 5, 2]]
    assert ids.dtype == np.int32


def test_encoding_pads_and_truncates_at_the_front_like_pad_sequences():
    ids = encoder(num_words=100, maxlen=4).encode(["", "the film great awful plot the"])
    assert ids.tolist() == [[0, 0, 0, 1], [6, 7, 8, 4]]  # only the start id; the last 4 ids


def test_encoder_follows_the_offline_tokenizer():
    text = "It's a <BR />GREAT film, 10/10 -- isn't it?"
    assert encoder().words(text) == corpus.tokenize(text)


def test_the_fast_tokenizer_matches_the_token_pattern_on_awkward_text():
    rng = np.random.default_rng(0)
    alphabet = list("ab9' ''-.,é\u212a\u0130\U0001f600\n\t<>/")
    samples = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 30)))) for _ in range(2000)]
    samples += ["don't", "'quoted'", "rock'n'roll", "a''b", "it's'", "café", "x\u00a0y"]
    for sample in samples:
        assert vocabulary.fast_words(sample) == corpus.TOKEN_PATTERN.findall(sample), repr(sample)


def test_the_spec_round_trips_through_its_file(tmp_path):
    original = Vocabulary(source_kind="npz", spec=TokenizerSpec(num_words=6, maxlen=5, exact=False), word_index=WORDS)
    uri = vocabulary.store_vocabulary(original, str(tmp_path))
    raw = (tmp_path / layout.VOCABULARY_NAME).read_bytes()
    assert vocabulary.parse_vocabulary(raw, uri) == original
    spec = json.loads(raw)["spec"]
    assert (spec["padding"], spec["truncating"], spec["index_from"], spec["oov_id"]) == ("pre", "pre", 3, 2)
    with pytest.raises(DataError, match="not a vocabulary file"):
        vocabulary.parse_vocabulary(b'{"spec": {}}', uri)


def test_a_word_index_must_map_words_to_positive_ranks():
    assert vocabulary.read_word_index(b'{"a": 1}', "x") == {"a": 1}
    for bad in (b"[1]", b'{"a": 0}', b'{"a": "1"}', b'{"a": true}', b"\xff"):
        with pytest.raises(DataError, match="x: "):
            vocabulary.read_word_index(bad, "x")


@pytest.fixture
def canonical_files(imdb_npz, http_server, monkeypatch):
    """The canonical imdb.npz and imdb_word_index.json served by the local HTTP server, with their checksums."""
    base, requests = http_server
    served = imdb_npz.parent / "canonical_word_index.json"
    served.write_text(json.dumps({f"word{rank}": rank for rank in range(1, 80)}))
    monkeypatch.setattr(sources, "CANONICAL_URL", f"{base}/{imdb_npz.name}")
    monkeypatch.setattr(sources, "CANONICAL_SHA256", sha256(imdb_npz))
    monkeypatch.setattr(sources, "WORD_INDEX_URL", f"{base}/{served.name}")
    monkeypatch.setattr(sources, "WORD_INDEX_MD5", hashlib.md5(served.read_bytes()).hexdigest())
    requests.clear()
    return served, requests


def test_the_canonical_word_index_is_downloaded_verified_and_cached_beside_imdb_npz(canonical_files, tmp_path):
    served, requests = canonical_files
    config = DataConfig(source="keras", cache_dir=str(tmp_path))
    first = sources.resolve_source(config)
    second = sources.resolve_source(config)
    assert first == second and requests == ["/imdb.npz", f"/{served.name}"]  # each downloaded once
    assert first.word_index_path == str(sources.cache_path(sources.WORD_INDEX_URL, str(tmp_path)))
    assert first.word_index_sha256 == sha256(served)
    words = vocabulary.build_vocabulary(first.kind, first.word_index_path, 50, 20)
    assert words is not None and words.word_index["word7"] == 7 and not words.spec.exact


def test_a_word_index_with_the_wrong_md5_is_refused_and_not_kept(canonical_files, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "WORD_INDEX_MD5", "0" * 32)
    with pytest.raises(ChecksumMismatch, match=r"md5 .* does not match the expected 0000"):
        sources.resolve_source(DataConfig(source="auto", cache_dir=str(tmp_path)))  # never a fallback
    assert not (tmp_path / "canonical_word_index.json").exists()
    assert not list(tmp_path.glob("canonical_word_index.json*"))


def test_auto_falls_back_to_offline_when_only_the_word_index_is_unreachable(
    canonical_files, closed_port_url, monkeypatch, tmp_path
):
    monkeypatch.setattr(sources, "WORD_INDEX_URL", closed_port_url.replace("imdb.npz", "imdb_word_index.json"))
    info = sources.resolve_source(DataConfig(source="auto", cache_dir=str(tmp_path)))
    assert info.kind == "offline" and "127.0.0.1" in info.fallback_reason


def test_a_local_mirror_takes_the_word_index_beside_it(tmp_path):
    npz = write_imdb_npz(tmp_path / "imdb.npz")
    bare = sources.resolve_source(DataConfig(source=str(npz), cache_dir=str(tmp_path / "cache")))
    assert bare.word_index_path is None
    assert vocabulary.build_vocabulary(bare.kind, None, 50, 20) is None
    (tmp_path / sources.WORD_INDEX_NAME).write_text('{"good": 1}')
    info = sources.resolve_source(DataConfig(source=str(npz), cache_dir=str(tmp_path / "cache")))
    assert info.word_index_path == str(tmp_path / sources.WORD_INDEX_NAME)


def test_encoding_the_offline_corpus_raw_test_reviews_reproduces_the_stored_ids(tmp_path):
    """Parity on real data: the published vocabulary.json turns each stored review's text into its stored ids."""
    import pyarrow.parquet as pq

    plan, info = prepare_source(sources.offline_source(), tmp_path, seed=42, num_words=500, maxlen=100)
    assert info.vocabulary_uri == str(tmp_path / "data" / info.key / layout.VOCABULARY_NAME)
    published = vocabulary.parse_vocabulary((tmp_path / "data" / info.key / "vocabulary.json").read_bytes(), "v")
    assert published.spec.exact and published.word_index == plan.word_index()
    test = pq.read_table(info.split_uris["test"])
    stored = np.array(test.column("tokens").to_pylist(), dtype=np.int32)
    assert test.num_rows == 5000
    assert np.array_equal(TextEncoder.of(published).encode(test.column("review").to_pylist()), stored)


def test_all_ids_are_the_whole_review_whose_tail_the_encoder_keeps():
    texts = ["", "the film great awful plot the", "The FILM<br />was great " * 40]
    for text in texts:
        whole = encoder(num_words=100, maxlen=4).all_ids(text)
        encoded = encoder(num_words=100, maxlen=4).encode_one(text)
        assert whole[0] == 1 and encoded == (whole if len(whole) <= 4 else whole[-4:])
    assert len(encoder().all_ids(texts[2])) == 1 + 3 * 40  # every known word, untruncated
