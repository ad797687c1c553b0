"""The numpy batch tokenizer against the corpus's reference tokenizer (`corpus.tokenize`): the same
words on awkward text and on the bundled offline corpus, the same counts, the same ids."""

from __future__ import annotations

import itertools
import random
import string
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from tasks.data import corpus, parallel, sources, tokenizer
from tasks.data.tokenizer import WordCounter, WordIds, count_words, split_words

KELVIN_SIGN, DOTTED_CAPITAL_I = "\u212a", "\u0130"
# Pieces of awkward reviews: apostrophes alone, doubled and at the edges, line breaks in every case
# and cut in halves (so that one can span two reviews), the two non-ASCII characters that lowercase
# to ASCII letters, other non-ASCII letters and digits, markup and punctuation, and plain words.
PIECES = (
    "'",
    "''",
    "'s",
    "don't",
    "rock'n'roll",
    "<br />",
    "<BR />",
    "<Br />",
    "<bR />",
    "<br/>",
    "<br",
    " />",
    "r />",
    "<",
    ">",
    DOTTED_CAPITAL_I,
    KELVIN_SIGN,
    "é",
    "É",
    "ß",
    "\u0131",  # dotless i
    "ǅ",
    "Ω",
    "Ⅻ",
    "٣",
    "\uff21",  # fullwidth A
    "ﬁ",
    "😀",
    "a",
    "Z",
    "x9",
    "42",
    "007",
    " ",
    "  ",
    "\n",
    "\t",
    "-",
    ",",
    ".",
    "/",
    "Film",
    "GREAT",
    "b",
    "r",
)


def random_review(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))


def assert_same_words(texts: list[str]) -> None:
    expected = [corpus.tokenize(text) for text in texts]
    for array in (pa.array(texts, pa.string()), pa.array(texts, pa.large_string())):
        assert split_words(array).as_lists() == expected


def test_only_two_non_ascii_characters_lowercase_to_a_word_character():
    """The tokenizer's premise: every other non-ASCII character separates words."""
    word_characters = set(string.ascii_lowercase + string.digits + "'")
    found = [
        chr(point)
        for point in range(128, sys.maxunicode + 1)
        if not 0xD800 <= point <= 0xDFFF and word_characters & set(chr(point).lower())
    ]
    assert found == [DOTTED_CAPITAL_I, KELVIN_SIGN]


@pytest.mark.parametrize(
    "texts",
    [
        ["It's GREAT", "'quoted'", "''", "a''b", "a'b'c", "'"],
        ["ends with a", "breaks<br", " />here", "<BR />", "x<br />y", "<Br /><bR />z"],
        ["word", "word", "", "9", "", "'a", "b'", "c"],  # words of neighbouring reviews never join
        [f"a{KELVIN_SIGN}b", KELVIN_SIGN, f"x{KELVIN_SIGN}", f"{KELVIN_SIGN}y", f"a'{KELVIN_SIGN}", f"'{KELVIN_SIGN}'"],
        [f"a{DOTTED_CAPITAL_I}b", f"a{DOTTED_CAPITAL_I}'b", f"{DOTTED_CAPITAL_I}", f"'{DOTTED_CAPITAL_I}'x"],
        ["café naïve ßtraße", "Ωmega \uff21b ﬁne 😀ok", ""],
        [""],
        [],
    ],
    ids=[
        "apostrophes",
        "line-breaks",
        "review-bounds",
        "kelvin-sign",
        "dotted-capital-i",
        "non-ascii",
        "empty",
        "none",
    ],
)
def test_split_words_gives_the_reference_words_on_awkward_text(texts):
    assert_same_words(texts)


def test_split_words_gives_the_reference_words_on_random_awkward_reviews():
    rng = random.Random(20261207)
    for _ in range(400):
        assert_same_words([random_review(rng) for _ in range(rng.randint(1, 12))])


def test_split_words_reads_sliced_and_chunked_arrays():
    rng = random.Random(7)
    texts = [random_review(rng) for _ in range(60)]
    expected = [corpus.tokenize(text) for text in texts]
    assert split_words(pa.array(texts).slice(17, 30)).as_lists() == expected[17:47]
    chunked = pa.chunked_array([pa.array(texts[:25]), pa.array(texts[25:])])
    assert split_words(chunked).as_lists() == expected
    assert split_words(pa.chunked_array([], pa.string())).as_lists() == []


@pytest.fixture(scope="module")
def offline_texts() -> pa.Array:
    """The bundled offline corpus's IMDB reviews, as the split stage reads them."""
    table = pcsv.read_csv(sources.offline_csv())
    return table.filter(pa.compute.equal(table["source"], corpus.OFFLINE_CORPUS_SOURCE))["text"].combine_chunks()


def test_split_words_gives_the_reference_words_on_the_offline_corpus(offline_texts):
    texts = offline_texts.to_pylist()
    assert len(texts) == 25_000
    found = split_words(offline_texts).as_lists()
    mismatches = [row for row, text in enumerate(texts) if found[row] != corpus.tokenize(text)]
    assert mismatches == []


def test_count_words_counts_the_chosen_reviews_words(offline_texts):
    texts = offline_texts.to_pylist()[:3000]
    chosen = np.random.default_rng(0).random(len(texts)) < 0.5
    array = pa.array(texts)
    expected = Counter(word for text, keep in zip(texts, chosen, strict=True) if keep for word in corpus.tokenize(text))
    assert count_words(array, chosen) == expected
    assert count_words(array) == Counter(word for text in texts for word in corpus.tokenize(text))
    assert count_words(array, np.zeros(len(texts), dtype=bool)) == Counter()


def test_count_words_counts_words_of_every_length():
    texts = ["a bb a", "abcdefgh abcdefgh abcdefghi", "abcdefghijklmnop abcdefghijklmnopq " * 2, "x" * 40]
    expected = Counter(word for text in texts for word in corpus.tokenize(text))
    assert count_words(pa.array(texts)) == expected


def test_count_words_counts_awkward_reviews_of_sliced_and_chunked_arrays():
    rng = random.Random(13)
    texts = [random_review(rng) for _ in range(3000)]
    expected = Counter(word for text in texts[100:2900] for word in corpus.tokenize(text))
    assert count_words(pa.array(texts).slice(100, 2800)) == expected
    chunked = pa.chunked_array([pa.array(texts[100:1500]), pa.array(texts[1500:2900])])
    assert count_words(chunked) == expected


START = 1


def assert_encodes_as_a_dict(known: dict[str, int], texts: list[str]) -> None:
    """`WordIds.encode` gives each review the start id, then the ids of the words `known` has."""
    encoded, offsets = WordIds(known).encode(pa.array(texts), START)
    found = [encoded[start:end].tolist() for start, end in itertools.pairwise(offsets)]
    expected = [[START, *(known[word] for word in corpus.tokenize(text) if word in known)] for text in texts]
    assert found == expected


def test_word_ids_encode_words_of_every_length_as_a_dict_does():
    rng = random.Random(3)
    letters = string.ascii_lowercase + string.digits

    def word(length: int) -> str:
        return "".join(rng.choice(letters) for _ in range(length))

    known = [word(length) for length in (1, 2, 7, 8, 9, 15, 16, 17, 30, 64) for _ in range(20)]
    known += ["it's", "rock'n'roll", "don't'stop'now'ok"]  # apostrophes inside words
    ids = {text: index + 2 for index, text in enumerate(dict.fromkeys(known))}
    ids |= {"café": 9999, "": 9998}  # never produced by the tokenizer: left out, harmlessly
    unknown = [word(length) for length in (1, 8, 9, 16, 17, 40) for _ in range(10)]
    unknown += [text[:-1] for text in known if len(text) > 1] + [text + "a" for text in known]  # near misses
    assert_encodes_as_a_dict(ids, [" ".join(rng.sample(known + unknown, 25)) for _ in range(200)])


def test_word_ids_encode_awkward_reviews_as_a_dict_does():
    rng = random.Random(11)
    texts = [random_review(rng) for _ in range(2000)]
    words = Counter(word for text in texts for word in corpus.tokenize(text))
    known = {word: index + 2 for index, word in enumerate(sorted(words)) if index % 3}  # two words in three
    assert_encodes_as_a_dict(known, texts)


def test_word_ids_of_a_vocabulary_larger_than_the_first_table_encode_every_word():
    known = {f"w{number}": number + 2 for number in range(20_000)}
    texts = [" ".join(f"w{number}" for number in range(start, 30_000, 7)) for start in range(7)]
    assert_encodes_as_a_dict(known, texts)


def test_word_ids_of_an_empty_vocabulary_keep_only_the_start_ids():
    assert_encodes_as_a_dict({}, ["a few words", "", "abcdefghijklmnopqrstuvwxyz"])


def test_word_ids_encode_sliced_and_chunked_arrays():
    rng = random.Random(5)
    texts = [random_review(rng) for _ in range(60)]
    known = {word: 2 + len(word) for text in texts for word in corpus.tokenize(text)}
    whole, whole_offsets = WordIds(known).encode(pa.array(texts), START)
    sliced, sliced_offsets = WordIds(known).encode(pa.array(texts).slice(17, 30), START)
    np.testing.assert_array_equal(sliced, whole[whole_offsets[17] : whole_offsets[47]])
    np.testing.assert_array_equal(sliced_offsets, whole_offsets[17:48] - whole_offsets[17])
    chunked = pa.chunked_array([pa.array(texts[:25]), pa.array(texts[25:])])
    np.testing.assert_array_equal(WordIds(known).encode(chunked, START)[0], whole)


def test_a_word_counter_adds_up_batches_as_one_count_of_all_their_reviews(offline_texts):
    texts = offline_texts.to_pylist()[:4000]
    chosen = np.random.default_rng(1).random(len(texts)) < 0.7
    counter = WordCounter()
    for start in range(0, len(texts), 350):  # batches of every size the table grows through
        counter.add(pa.array(texts[start : start + 350]), chosen[start : start + 350])
    expected = Counter(word for text, keep in zip(texts, chosen, strict=True) if keep for word in corpus.tokenize(text))
    assert counter.counts() == expected


def test_a_batch_is_cut_into_parts_of_about_equal_text_that_cover_it_in_order(in_small_parts):
    lengths = [0, 5000, 3, 3, 3, 3, 3, 3, 100, 100, 100, 4000, 0]
    offsets = 7 + np.cumsum([0, *lengths])  # a slice's offsets start past 0
    bounds = parallel.part_bounds(offsets)
    assert len(bounds) == 3
    assert bounds[0][0] == 0 and bounds[-1][1] == len(lengths)
    assert all(end > first for first, end in bounds)
    assert all(end == first for (_, end), (first, _) in itertools.pairwise(bounds))
    assert parallel.part_bounds(offsets[:3]) == [(0, 2)]  # too little text to cut
    assert parallel.part_bounds(np.array([0])) == [(0, 0)]


def test_parts_in_threads_give_what_one_loop_gives(in_small_parts):
    rng = random.Random(17)
    texts = [random_review(rng) for _ in range(3000)]
    known = {word: index + 2 for index, word in enumerate(sorted(set(corpus.tokenize(" ".join(texts))))) if index % 2}
    assert parallel.part_bounds(tokenizer._bytes_of(pa.array(texts))[1]) != [(0, 3000)]
    assert_encodes_as_a_dict(known, texts)
    chosen = np.random.default_rng(2).random(len(texts)) < 0.6
    counter = WordCounter()
    for start in range(0, len(texts), 700):
        counter.add(pa.array(texts[start : start + 700]), chosen[start : start + 700])
    expected = Counter(word for text, keep in zip(texts, chosen, strict=True) if keep for word in corpus.tokenize(text))
    assert counter.counts() == expected
    normalized, offsets, ascii_rows = tokenizer.normalize_ascii(pa.array(texts))
    for row, text in enumerate(texts):
        assert ascii_rows[row] == text.isascii()
        if text.isascii():
            assert normalized[offsets[row] : offsets[row + 1]].tobytes().decode() == " ".join(text.lower().split())


def test_normalize_gives_pythons_lowercase_and_whitespace_for_every_review(parts):
    rng = random.Random(23)
    pieces = (*PIECES, "\u00a0", "\u2028", "\u3000", "\u0085", "\u200b", "\u03a3", "\u0391\u03a3", "\x1c", "\r\n")
    texts = ["", " ", *("".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(3000))]
    normalized, starts, ends = tokenizer.normalize(pa.array(texts))
    found = [normalized[start:end].tobytes().decode() for start, end in zip(starts, ends, strict=True)]
    assert found == [" ".join(text.lower().split()) for text in texts]
