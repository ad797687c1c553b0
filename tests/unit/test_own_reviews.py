"""Own labelled reviews as a source: formats, labels, the split column, bad input, the hash split,
duplicates and the vocabulary ranked on the training split."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.config import DataConfig
from tasks.data import corpus, own_reviews, prepare, sources, split, store, vocabulary
from tasks.errors import DataError, ReviewFileError, SourceError

MAXLEN = 100  # longer than any review written here: the stored rows are whole
WORDS = ("good", "bad", "plot", "actor", "scene", "music", "ending", "story", "camera", "script")


def texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"review {seed}-{i} " + " ".join(rng.choices(WORDS, k=6)) for i in range(count)]


def write_csv(path: Path, rows: list[tuple[str, object]], header: str = "text,label") -> Path:
    lines = [header, *(f'"{text}",{label}' for text, label in rows)]
    content = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(content.encode()))
    else:
        path.write_text(content)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    content = "".join(json.dumps(row) + "\n" for row in rows)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(content.encode()))
    else:
        path.write_text(content)
    return path


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def read_all(*paths: Path) -> list[own_reviews.Review]:
    return list(own_reviews.read_review_files([str(path) for path in paths], "text", "label"))


def prepare_own(source_uri: str, root: Path, seed: int = 0, **options) -> tuple[split.SplitPlan, store.DatasetInfo]:
    """The split plan and the stored data set of one's own reviews, as the split and pad-and-store stages make them."""
    config = DataConfig(source=source_uri, num_words=50, maxlen=MAXLEN, cache_dir=str(root / "cache"), **options)
    source = sources.resolve_source(config)
    plan = prepare.split_resolved(source, config, seed, str(root))
    return plan, prepare.store_splits(plan, source, config, seed, str(root))


def stored_reviews(dataset: store.DatasetInfo) -> dict[str, corpus.Reviews]:
    """The stored splits as reviews (front padding cut off) with their texts."""
    splits = {}
    for name, uri in dataset.split_uris.items():
        tokens, labels, _ = store.read_split(uri)
        reviews = corpus.Reviews.from_lists([[int(token) for token in row if token] for row in tokens], labels)
        texts = np.array(pq.read_table(uri).column(store.TEXT_COLUMN).to_pylist(), dtype=object)
        splits[name] = dataclasses.replace(reviews, texts=texts)
    return splits


def split_of(folder: Path, seed: int = 0, **options) -> dict[str, corpus.Reviews]:
    """The stored splits of the reviews under `folder` (stored beside it, not under it)."""
    _, dataset = prepare_own(str(folder), folder.parent / f"{folder.name}-store", seed, **options)
    return stored_reviews(dataset)


@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz"])
def test_csv_files_plain_and_gzipped(tmp_path, name):
    path = write_csv(tmp_path / name, [("Great film", "positive"), ("dull, long", "Neg"), ("fine", 1)])
    assert [(review.text, review.label) for review in read_all(path)] == [
        ("Great film", 1),
        ("dull, long", 0),
        ("fine", 1),
    ]


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_jsonl_files_plain_and_gzipped(tmp_path, name):
    path = write_jsonl(tmp_path / name, [{"text": "loved it", "label": 1}, {"text": "hated it", "label": 0}])
    assert [(review.text, review.label) for review in read_all(path)] == [("loved it", 1), ("hated it", 0)]


def test_parquet_file_with_label_spellings_in_any_case(tmp_path):
    labels = ["POSITIVE", "negative", "Pos", "neg", "0", "1"]
    path = write_parquet(tmp_path / "a.parquet", {"text": [f"t{i}" for i in range(6)], "label": labels})
    assert [review.label for review in read_all(path)] == [1, 0, 1, 0, 0, 1]


def test_other_column_names_are_read_when_named(tmp_path):
    write_csv(tmp_path / "a.csv", [(text, i % 2) for i, text in enumerate(texts(40))], header="body,sentiment")
    splits = split_of(tmp_path, text_column="body", label_column="sentiment")
    assert sum(len(split) for split in splits.values()) == 40


def test_the_split_column_overrides_the_hash(tmp_path):
    rows = [{"text": text, "label": i % 2, "split": "test" if i < 10 else ""} for i, text in enumerate(texts(60))]
    write_jsonl(tmp_path / "a.jsonl", rows)
    splits = split_of(tmp_path)
    assert set(texts(60)[:10]) <= set(splits["test"].texts)
    assert len(splits["train"]) + len(splits["val"]) > 30  # the rows without a split go by hash


def test_a_folder_reads_every_data_file_under_it_in_name_order(tmp_path):
    all_texts = texts(60)
    write_csv(tmp_path / "b.csv", [(text, 1) for text in all_texts[30:]])
    write_jsonl(tmp_path / "a.jsonl", [{"text": text, "label": 0} for text in all_texts[:30]])
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / "_temporary").mkdir()  # a writer's scratch folder is no snapshot
    write_csv(tmp_path / "_temporary" / "c.csv", [("ignored", 1)])
    source = sources.resolve_source(DataConfig(source=tmp_path.as_uri()))
    assert source.kind == "reviews"
    assert [Path(file.uri).name for file in source.files] == ["a.jsonl", "b.csv"]
    assert source.snapshots == ["."]
    splits = split_of(tmp_path)
    assert sorted(text for split in splits.values() for text in split.texts) == sorted(all_texts)


def write_snapshots(prefix: Path, count: int, per_snapshot: int = 30) -> list[list[str]]:
    """`count` dated snapshots in mixed formats; returns each snapshot's texts."""
    written = []
    for index in range(count):
        folder = prefix / f"date=2026-12-{index + 1:02d}"
        folder.mkdir(parents=True)
        rows = [(text, i % 2) for i, text in enumerate(texts(per_snapshot, seed=index))]
        if index % 3 == 0:
            write_csv(folder / "part-0.csv", rows)
        elif index % 3 == 1:
            write_jsonl(folder / "part-0.jsonl.gz", [{"text": text, "label": label} for text, label in rows])
        else:
            write_parquet(folder / "part-0.parquet", {"text": [t for t, _ in rows], "label": [lb for _, lb in rows]})
        written.append([text for text, _ in rows])
    return written


@pytest.mark.parametrize(
    ("window", "chosen"), [("all", [0, 1, 2, 3]), ("latest", [3]), ("last:2", [2, 3]), ("last:4", [0, 1, 2, 3])]
)
def test_the_window_picks_the_newest_snapshots_by_name(tmp_path, window, chosen):
    written = write_snapshots(tmp_path, 4)
    source = sources.resolve_source(DataConfig(source=str(tmp_path), window=window))
    names = [f"date=2026-12-{index + 1:02d}" for index in chosen]
    assert source.snapshots == names
    assert [file.snapshot for file in source.files] == names
    splits = split_of(tmp_path, window=window)
    expected = sorted(text for index in chosen for text in written[index])
    assert sorted(text for split in splits.values() for text in split.texts) == expected


def test_a_window_larger_than_the_snapshots_warns_and_takes_them_all(tmp_path, caplog):
    write_snapshots(tmp_path, 2)
    source = sources.resolve_source(DataConfig(source=str(tmp_path), window="last:5"))
    assert len(source.snapshots) == 2
    assert "window last:5: only 2 snapshot(s) exist" in caplog.text


def test_the_files_directly_under_the_prefix_are_the_first_snapshot(tmp_path):
    write_snapshots(tmp_path, 1)
    write_csv(tmp_path / "seed.csv", [(text, 1) for text in texts(10, seed=50)])
    source = sources.resolve_source(DataConfig(source=str(tmp_path)))
    assert source.snapshots == [".", "date=2026-12-01"]
    latest = sources.resolve_source(DataConfig(source=str(tmp_path), window="latest"))
    assert [Path(file.uri).name for file in latest.files] == ["part-0.csv"]


def test_the_data_set_key_follows_the_window_and_each_files_content(tmp_path):
    write_snapshots(tmp_path, 3)
    keys = {
        window: sources.resolve_source(DataConfig(source=str(tmp_path), window=window)).sha256
        for window in ("all", "latest", "last:2")
    }
    assert len(set(keys.values())) == 3
    # a new snapshot changes `all` and `latest`; the same files read again give the same key
    (tmp_path / "date=2026-12-09").mkdir()
    write_csv(tmp_path / "date=2026-12-09" / "a.csv", [("new one", 1)])
    assert sources.resolve_source(DataConfig(source=str(tmp_path), window="all")).sha256 != keys["all"]
    (tmp_path / "date=2026-12-09" / "a.csv").unlink()
    (tmp_path / "date=2026-12-09").rmdir()
    assert sources.resolve_source(DataConfig(source=str(tmp_path), window="all")).sha256 == keys["all"]


def test_an_empty_snapshot_is_refused_naming_it(tmp_path):
    write_snapshots(tmp_path, 2)
    (tmp_path / "date=2026-12-03").mkdir()
    (tmp_path / "date=2026-12-03" / "README.txt").write_text("nothing yet")
    with pytest.raises(DataError, match=r"date=2026-12-03: snapshot 'date=2026-12-03' has no data files"):
        sources.resolve_source(DataConfig(source=str(tmp_path)))


def test_snapshots_whose_columns_differ_are_refused(tmp_path):
    write_snapshots(tmp_path, 2)
    folder = tmp_path / "date=2026-12-03"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": "fine", "label": 1, "stars": 4}])
    with pytest.raises(DataError, match=r"date=2026-12-03/a\.jsonl: columns .* differ from .*date=2026-12-01"):
        split_of(tmp_path)


@pytest.mark.parametrize("window", ["last:0", "last:", "newest", "last:-2"])
def test_a_window_that_picks_nothing_or_is_misspelt_is_refused(window):
    with pytest.raises(ValueError, match="window"):
        DataConfig(window=window)


def test_adding_snapshots_never_moves_a_review_between_splits(tmp_path):
    write_snapshots(tmp_path, 2, per_snapshot=80)
    before = split_of(tmp_path)
    for index in (2, 3):
        folder = tmp_path / f"date=2026-12-{index + 1:02d}"
        folder.mkdir()
        write_csv(folder / "a.csv", [(text, 1) for text in texts(80, seed=index)])
    after = split_of(tmp_path)
    for name in own_reviews.SPLIT_NAMES:
        assert set(before[name].texts) <= set(after[name].texts)


def test_the_source_key_is_the_hash_of_exactly_the_files_chosen(tmp_path):
    path = write_csv(tmp_path / "a.csv", [("one", 1), ("two", 0)])
    first = sources.resolve_source(DataConfig(source=str(tmp_path))).sha256
    (tmp_path / "notes.txt").write_text("not data")
    assert sources.resolve_source(DataConfig(source=str(tmp_path))).sha256 == first
    write_csv(path, [("one", 1), ("two", 1)])
    assert sources.resolve_source(DataConfig(source=str(tmp_path))).sha256 != first


BAD_INPUT = [
    ("missing.csv", b"body,label\nfine,1\n", "a.csv: no column 'text'"),
    ("third.csv", b"text,label\nfine,1\nmeh,neutral\n", "a.csv: label 'neutral' is none of"),
    ("null_text.csv", b"text,label\nfine,1\n,0\n", "a.csv: column 'text' has 1 empty (null)"),
    ("null_label.csv", b"text,label\nfine,1\nmeh,\n", "a.csv: column 'label' has 1 empty (null)"),
    ("latin1.csv", b"text,label\ncaf\xe9,1\n", "a.csv: cannot read csv"),
    ("empty.csv", b"", "a.csv: empty file"),
    ("header_only.csv", b"text,label\n", "a.csv: no reviews (empty file)"),
]


@pytest.mark.parametrize(("case", "content", "message"), BAD_INPUT, ids=[case for case, _, _ in BAD_INPUT])
def test_bad_csv_gives_one_line_naming_the_file(tmp_path, case, content, message):
    (tmp_path / "a.csv").write_bytes(content)
    with pytest.raises(DataError) as error:
        split_of(tmp_path)
    assert message in str(error.value)
    assert str(tmp_path / "a.csv") in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "a.jsonl: empty file"), (b'{"text": "caf\xe9", "label": 1}\n', "a.jsonl: column 'text' is not UTF-8")],
)
def test_an_empty_or_non_utf8_jsonl_file_is_refused(tmp_path, content, message):
    (tmp_path / "a.jsonl").write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)):
        split_of(tmp_path)


def test_non_utf8_text_in_parquet_is_refused(tmp_path):
    write_parquet(tmp_path / "a.parquet", {"text": pa.array([b"caf\xe9"], pa.binary()), "label": [1]})
    with pytest.raises(DataError, match=r"a\.parquet: column 'text' is not UTF-8 text"):
        split_of(tmp_path)


def test_an_unreadable_parquet_file_is_refused(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=r"a\.parquet: cannot read parquet"):
        split_of(tmp_path)


def test_files_with_different_columns_are_refused(tmp_path):
    write_csv(tmp_path / "a.csv", [("one", 1)])
    write_jsonl(tmp_path / "b.jsonl", [{"text": "two", "label": 0, "stars": 4}])
    with pytest.raises(DataError, match=r"b\.jsonl: columns .* differ from .* of .*a\.csv"):
        split_of(tmp_path)


def test_a_folder_without_data_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(SourceError, match="no data files"):
        sources.resolve_source(DataConfig(source=str(tmp_path)))


def test_a_bad_split_value_is_refused(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "one", "label": 1, "split": "holdout"}])
    with pytest.raises(DataError, match=r"a\.jsonl: split 'holdout' is none of"):
        split_of(tmp_path)


def test_adding_reviews_never_moves_one_between_splits():
    rng = random.Random(5)
    for round_ in range(5):
        base = texts(rng.randint(20, 200), seed=round_)
        grown = base + texts(rng.randint(1, 300), seed=100 + round_)
        rng.shuffle(grown)
        first, second = (
            own_reviews.fingerprint_batch(
                corpus.ReviewBatch(labels=np.ones(len(rows), np.int8), texts=pa.array(rows)), 42, 0.2, 0.2
            )
            for rows in (base, grown)
        )
        assert len(set(first.splits.tolist())) == 3
        before = dict(zip(base, first.splits.tolist(), strict=True))
        after = dict(zip(grown, second.splits.tolist(), strict=True))
        assert {text: after[text] for text in base} == before


def test_the_hash_split_follows_the_shares_and_the_seed():
    keys = [own_reviews.normalize_text(text) for text in texts(4000)]
    names = [own_reviews.hash_split(key, 0, 0.2, 0.25) for key in keys]
    shares = {name: names.count(name) / len(names) for name in own_reviews.SPLIT_NAMES}
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert shares["val"] == pytest.approx(0.8 * 0.25, abs=0.03)
    assert names != [own_reviews.hash_split(key, 1, 0.2, 0.25) for key in keys]


def test_duplicates_are_kept_once_with_the_last_files_label(tmp_path, caplog):
    caplog.set_level("INFO")
    unique = texts(40)
    write_csv(tmp_path / "a.csv", [(text, 0) for text in unique])
    write_csv(tmp_path / "b.csv", [("  " + unique[0].upper() + " ", 1), (unique[1], 0)])
    splits = split_of(tmp_path)
    assert sum(len(split) for split in splits.values()) == 40
    labels = {
        own_reviews.normalize_text(text): label
        for split in splits.values()
        for text, label in zip(split.texts, split.labels, strict=True)
    }
    assert labels[own_reviews.normalize_text(unique[0])] == 1
    assert "1 text(s) with conflicting labels" in caplog.text


def test_the_latest_snapshots_label_wins_and_conflicts_are_counted(tmp_path):
    unique = texts(40)
    for day, label in (("date=2026-12-01", 0), ("date=2026-12-02", 1)):
        (tmp_path / day).mkdir()
        write_csv(tmp_path / day / "a.csv", [(text, label) for text in unique[:3]] + [(unique[10 + label], 0)])
    write_csv(tmp_path / "date=2026-12-01" / "b.csv", [(text, 1) for text in unique[20:]])
    plan, dataset = prepare_own(str(tmp_path), tmp_path.parent / "store")
    splits = stored_reviews(dataset)
    labels = {text: label for part in splits.values() for text, label in zip(part.texts, part.labels, strict=True)}
    assert [labels[text] for text in unique[:3]] == [1, 1, 1]
    assert plan.ingest == own_reviews.Ingest(rows_read=28, distinct=25, conflicting_labels=3).as_statistics()
    assert plan.total_rows == 25 and plan.source_rows == 28
    assert np.sum(plan.assignment() == split.DROPPED) == 3


def test_a_duplicate_keeps_the_split_of_its_last_occurrence(tmp_path):
    unique = texts(60)
    rows = [{"text": text, "label": i % 2, "split": ""} for i, text in enumerate(unique)]
    rows[0]["split"] = "test"
    rows.append({"text": unique[0].upper(), "label": 1, "split": "train"})  # the last occurrence: train, positive
    rows.append({"text": unique[1], "label": 0, "split": "test"})  # was positive: a second conflict
    rows.append({"text": unique[2], "label": 0, "split": ""})  # the same label again: no conflict
    write_jsonl(tmp_path / "a.jsonl", rows)
    plan, dataset = prepare_own(str(tmp_path), tmp_path.parent / "store")
    splits = stored_reviews(dataset)
    where = {
        own_reviews.normalize_text(text): (name, label)
        for name, part in splits.items()
        for text, label in zip(part.texts, part.labels, strict=True)
    }
    assert where[own_reviews.normalize_text(unique[0])] == ("train", 1)
    assert where[own_reviews.normalize_text(unique[1])] == ("test", 0)
    assert unique[0] not in splits["test"].texts and unique[0].upper() in splits["train"].texts
    assert plan.ingest == {"rows_read": 63, "distinct": 60, "duplicates_dropped": 3, "conflicting_labels": 2}
    assert sum(len(part) for part in splits.values()) == 60


def test_a_split_left_empty_is_refused(tmp_path):
    write_jsonl(
        tmp_path / "a.jsonl", [{"text": text, "label": i % 2, "split": "train"} for i, text in enumerate(texts(30))]
    )
    with pytest.raises(ReviewFileError, match=r"a\.jsonl: 30 distinct reviews leave the val split empty"):
        prepare_own(str(tmp_path), tmp_path.parent / "store")
    write_jsonl(
        tmp_path / "a.jsonl",
        [{"text": text, "label": i % 2, "split": "train" if i else "val"} for i, text in enumerate(texts(30))]
        + [{"text": texts(30)[0], "label": 1, "split": "train"}],  # the one val review repeated into train
    )
    with pytest.raises(ReviewFileError, match="30 distinct reviews leave the val split empty"):
        prepare_own(str(tmp_path), tmp_path.parent / "store")


def test_the_vocabulary_is_ranked_on_the_training_split_only(tmp_path):
    rows = [(text, i % 2) for i, text in enumerate(texts(80))]
    rows.append(("zebra zebra only here", 1))
    write_jsonl(
        tmp_path / "a.jsonl",
        [{"text": text, "label": label, "split": "test" if "zebra" in text else ""} for text, label in rows],
    )
    plan, dataset = prepare_own(str(tmp_path), tmp_path.parent / "store")
    splits = stored_reviews(dataset)
    words = vocabulary.parse_vocabulary(Path(dataset.vocabulary_uri).read_bytes(), "vocabulary.json")
    assert words.spec.exact and words.word_index == plan.word_index()
    assert "zebra" not in words.word_index and "good" in words.word_index
    training_words = Counter(word for text in splits["train"].texts for word in corpus.tokenize(text))
    assert words.word_index == split.rank_words(training_words)
    # the stored ids of the training texts are exactly what the published vocabulary encodes
    encoder = vocabulary.TextEncoder.of(words)
    train = splits["train"]
    for row, text in enumerate(train.texts):
        assert encoder.all_ids(text) == train.ids[train.offsets[row] : train.offsets[row + 1]].tolist()
    zebra_row = list(splits["test"].texts).index("zebra zebra only here")
    test = splits["test"]
    assert np.array_equal(test.ids[test.offsets[zebra_row] : test.offsets[zebra_row + 1]], [corpus.START_ID])


def test_a_prefix_on_a_remote_filesystem_is_read_through_fsspec(tmp_path):
    import fsspec

    memory = fsspec.filesystem("memory")
    prefix = "memory://own-reviews-test/batch"
    all_texts = texts(40)
    memory.pipe(
        "/own-reviews-test/batch/b.csv", ("text,label\n" + "".join(f"{t},1\n" for t in all_texts[20:])).encode()
    )
    memory.pipe(
        "/own-reviews-test/batch/a.jsonl.gz",
        gzip.compress("".join(json.dumps({"text": t, "label": "neg"}) + "\n" for t in all_texts[:20]).encode()),
    )
    try:
        source = sources.resolve_source(DataConfig(source=prefix))
        assert [file.uri for file in source.files] == [f"{prefix}/a.jsonl.gz", f"{prefix}/b.csv"]
        splits = stored_reviews(prepare_own(prefix, tmp_path)[1])
        assert sorted(text for split in splits.values() for text in split.texts) == sorted(all_texts)
    finally:
        memory.rm("/own-reviews-test", recursive=True)


def test_the_stored_data_set_keeps_every_splits_text_and_the_training_vocabulary(tmp_path):
    write_csv(tmp_path / "a.csv", [(text, i % 2) for i, text in enumerate(texts(60))])
    plan, dataset = prepare_own(str(tmp_path), tmp_path.parent / "store")
    splits = stored_reviews(dataset)
    assert sorted(text for part in splits.values() for text in part.texts) == sorted(texts(60))
    assert {name: len(part) for name, part in splits.items()} == plan.rows
    expected = vocabulary.text_vocabulary_of("reviews", plan.word_index(), 50, MAXLEN)
    assert dataset.vocabulary_uri is not None
    assert vocabulary.parse_vocabulary(Path(dataset.vocabulary_uri).read_bytes(), "vocabulary.json") == expected
    # reviews in memory stored by store_reviews give the same data set: same key, same files
    again = prepare.store_reviews(splits, MAXLEN, dataset.metadata, str(tmp_path.parent / "again"), expected)
    assert again.key == dataset.key and again.rows == dataset.rows
    for name in own_reviews.SPLIT_NAMES:
        assert pq.read_table(again.split_uris[name]).equals(pq.read_table(dataset.split_uris[name]))


def test_pinned_files_are_read_exactly_and_a_changed_or_deleted_one_is_refused(tmp_path):
    write_snapshots(tmp_path, 2)
    listed = sources.resolve_source(DataConfig(source=str(tmp_path)))
    (tmp_path / "date=2026-12-09").mkdir()
    write_csv(tmp_path / "date=2026-12-09" / "a.csv", [("a later review", 1)])
    pinned = sources.resolve_source(DataConfig(source=str(tmp_path), files=listed.files))
    assert (pinned.files, pinned.snapshots, pinned.sha256) == (listed.files, listed.snapshots, listed.sha256)

    changed = Path(listed.files[0].uri)
    changed.write_text(changed.read_text() + '"one more",1\n')
    with pytest.raises(SourceError, match=rf"{re.escape(str(changed))}: changed since the run read it"):
        sources.resolve_source(DataConfig(source=str(tmp_path), files=listed.files))
    changed.unlink()
    with pytest.raises(SourceError, match=rf"{re.escape(str(changed))}: deleted since the run read it"):
        sources.resolve_source(DataConfig(source=str(tmp_path), files=listed.files))


# Pieces of awkward reviews for the batch fingerprints: every ASCII whitespace str.split() knows (and
# \x1c-\x1f, which it counts too), Unicode spaces, capitals inside and outside ASCII, "İ" (whose
# lowercase is two characters), empty and blank texts.
AWKWARD_PIECES = (
    "A",
    "b",
    "Film",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1f",
    "\x85",
    "\xa0",
    "\u2028",
    "\u3000",
    "É",
    "İ",
    "ß",
    "Σ",
    "ΟΔΟΣ",
    ".",
    "'",
    "0",
    "😀",
)


def reference_fingerprint(text: str, seed: int, fractions: tuple[float, float]) -> tuple[bytes, str]:
    normalized = own_reviews.normalize_text(text)
    digest = hashlib.blake2b(normalized.encode(), digest_size=16).digest()
    return digest, own_reviews.hash_split(normalized, seed, *fractions)


@pytest.mark.parametrize("seed", [0, 42, 2026])
def test_batch_fingerprints_and_splits_match_the_per_review_definition(seed):
    rng = random.Random(seed)
    rows = ["", " ", "\x1c", "İ", *texts(300, seed=seed)]
    rows += ["".join(rng.choice(AWKWARD_PIECES) for _ in range(rng.randint(0, 15))) for _ in range(1500)]
    fractions = (0.2, 0.25)
    found = own_reviews.fingerprint_batch(
        corpus.ReviewBatch(labels=np.zeros(len(rows), np.int8), texts=pa.array(rows)), seed, *fractions
    )
    expected = [reference_fingerprint(text, seed, fractions) for text in rows]
    assert [bytes(row) for row in found.fingerprints.astype("<u8")] == [digest for digest, _ in expected]
    assert [own_reviews.SPLIT_NAMES[code] for code in found.splits.tolist()] == [name for _, name in expected]


# Pieces of awkward texts for the normalisation: ASCII and Unicode whitespace of every kind Python's
# split() knows (and U+200B, which it does not), letters whose lowercase grows ("İ") or depends on
# what follows ("Σ": final sigma at a word's end), and characters of every UTF-8 length.
NORMALISED_PIECES = (
    *("a", "B", "x9", "'", "<br />", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f"),
    *("\u0085", "\u00a0", "\u1680", "\u2003", "\u2028", "\u2029", "\u202f", "\u3000", "\u200b"),
    *("\u0130", "\u03a3", "\u0391\u03a3", "\u03c2", "\u212a", "\u00e9", "\u00df", "\u01c5", "\U0001f600"),
)


def awkward_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [""] + ["".join(rng.choices(NORMALISED_PIECES, k=rng.randint(0, 40))) for _ in range(count)]


def test_fingerprints_and_split_hashes_are_those_of_the_python_normalisation(parts):
    rows = awkward_texts(3000, 7) + texts(500) + ["long " * 60]  # over one 128-byte block
    batch = corpus.ReviewBatch(labels=np.zeros(len(rows), np.int8), texts=pa.array(rows))
    found = own_reviews.fingerprint_batch(batch, 42, 0.2, 0.25)
    normalized = [own_reviews.normalize_text(text).encode() for text in rows]
    expected = [hashlib.blake2b(text, digest_size=16).digest() for text in normalized]
    assert [row.tobytes() for row in found.fingerprints] == expected
    names = [own_reviews.hash_split(text.decode(), 42, 0.2, 0.25) for text in normalized]
    assert [own_reviews.SPLIT_NAMES[code] for code in found.splits] == names


def test_the_compiled_blake2b_gives_hashlibs_digests_at_every_block_boundary():
    rng = random.Random(3)
    messages = [rng.randbytes(length) for length in (0, 1, 111, 127, 128, 129, 255, 256, 257, 1000, 4097)]
    data = np.frombuffer(b"".join(messages), dtype=np.uint8)
    ends = np.cumsum([len(message) for message in messages])
    starts = ends - [len(message) for message in messages]
    for prefix in (b"", b"7\0", rng.randbytes(130)):
        for size in (1, 8, 16, 64):
            digests = own_reviews._blake2b_rows(data, starts, ends, prefix, size)
            assert [row.tobytes() for row in digests] == [
                hashlib.blake2b(prefix + message, digest_size=size).digest() for message in messages
            ]


def test_the_last_row_of_each_fingerprint_is_kept_and_label_conflicts_counted():
    rng = np.random.default_rng(8)
    pool = rng.integers(0, 2**64, size=(300, 2), dtype=np.uint64)
    pool[1, 0] = pool[0, 0]  # two fingerprints that share their first half only
    fingerprints, labels = pool[rng.integers(0, 300, size=2000)], rng.integers(0, 2, size=2000).astype(np.int8)
    kept, conflicts = own_reviews.last_of_each(fingerprints, labels)
    last = {tuple(row): index for index, row in enumerate(fingerprints.tolist())}
    assert np.flatnonzero(kept).tolist() == sorted(last.values())
    seen: dict[tuple, set] = {}
    for row, label in zip(fingerprints.tolist(), labels.tolist(), strict=True):
        seen.setdefault(tuple(row), set()).add(label)
    assert conflicts == sum(len(found) > 1 for found in seen.values())
    assert own_reviews.last_of_each(np.zeros((0, 2), np.uint64), np.zeros(0, np.int8))[0].size == 0
