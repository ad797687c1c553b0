"""Fixed-width sequences: Keras `pad_sequences` semantics, stored as one Parquet file per split.

Parquet layout: `tokens` is a fixed-size list of `maxlen` int32 ids, `label` an int8, and `review`
the raw text where the source has it (for error analysis and the vocabulary's parity); the schema
metadata carries num_words, maxlen, source, source sha256 and seed, so a file explains itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from tasks.config import DataConfig
from tasks.data.corpus import PAD_ID, Reviews
from tasks.data.vocabulary import Vocabulary, store_vocabulary
from tasks.errors import DataError
from tasks.storage import fs
from tasks.storage.layout import dataset_uri, split_name

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DATASET_FORMAT = 2  # bump when the stored layout changes, so old folders are not reused
# The key of the pipeline's own schema metadata in every Parquet file it writes (the stored splits,
# and batch scoring's predictions), so a file explains itself.
METADATA_KEY = b"imdb_rnn_pipeline"
# A stored split's columns: the padded ids, the 0/1 label, and the raw text where the source has it.
TOKENS_COLUMN, LABEL_COLUMN, TEXT_COLUMN = "tokens", "label", "review"


class DatasetInfo(BaseModel):
    """Where the padded splits of one data set live, and what they hold."""

    key: str
    uri: str
    split_uris: dict[str, str]
    rows: dict[str, int]
    metadata: dict[str, str | int | float]
    vocabulary_uri: str | None = None  # the id scheme's vocabulary.json; None for a mirror without a word index


def pad_reviews(reviews: Reviews, maxlen: int) -> np.ndarray:
    """`pad_sequences(x, maxlen)`: keep the last `maxlen` ids, pad with 0 at the front. int32 (n, maxlen)."""
    lengths = reviews.lengths
    kept = np.minimum(lengths, maxlen)
    padded = np.full((len(reviews), maxlen), PAD_ID, dtype=np.int32)
    rows = np.repeat(np.arange(len(reviews)), kept)
    position = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    source = np.repeat(reviews.offsets[1:] - kept, kept) + position
    padded[rows, np.repeat(maxlen - kept, kept) + position] = reviews.ids[source]
    return padded


def dataset_metadata(config: DataConfig, seed: int, source_uri: str, source_sha256: str) -> dict:
    """Everything that shapes the stored splits: the source's content and the split/pad parameters."""
    return {
        "num_words": config.num_words,
        "maxlen": config.maxlen,
        "val_fraction": config.val_fraction,
        "seed": seed,
        "source": source_uri,
        "source_sha256": source_sha256,
    }


def own_reviews_metadata(config: DataConfig) -> dict:
    """What else shapes the stored splits of one's own reviews: the test share and the columns read."""
    return {
        "test_fraction": config.test_fraction,
        "text_column": config.text_column,
        "label_column": config.label_column,
    }


def content_digest(padded: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """sha256 of every split's padded ids and labels: what the stored files will hold."""
    digest = hashlib.sha256()
    for name in SPLITS:
        for array in padded[name]:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def dataset_key(metadata: dict[str, str | int | float], digest: str) -> str:
    """A short hash of the stored content (`content_digest`) and the parameters behind it.

    The source's URI is left out: the same bytes from another mirror give the same data set. Code
    that changes what is stored changes the digest; code that does not keeps runs comparable.
    """
    content = {name: value for name, value in metadata.items() if name != "source"}
    canonical = json.dumps({**content, "format": DATASET_FORMAT, "content": digest}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def to_table(tokens: np.ndarray, labels: np.ndarray, metadata: dict, texts: np.ndarray | None = None) -> pa.Table:
    """An Arrow table of padded ids, labels and (when given) raw texts, with `metadata` in its schema."""
    maxlen = tokens.shape[1]
    flat = pa.array(np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1))
    columns = {
        TOKENS_COLUMN: pa.FixedSizeListArray.from_arrays(flat, maxlen),
        LABEL_COLUMN: pa.array(np.asarray(labels, dtype=np.int8)),
    }
    if texts is not None:
        columns[TEXT_COLUMN] = pa.array(texts, type=pa.string())
    table = pa.table(columns)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def write_split(
    uri: str, tokens: np.ndarray, labels: np.ndarray, metadata: dict, texts: np.ndarray | None = None
) -> None:
    buffer = io.BytesIO()
    pq.write_table(to_table(tokens, labels, metadata, texts), buffer)
    fs.write_bytes(uri, buffer.getvalue())


def read_split(uri: str, expected_maxlen: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Padded ids (n, maxlen) int32, labels (n,) int8 and the schema metadata; no Python loops.

    Raises DataError when the file is not Parquet, lacks the expected columns or their integer
    types, or disagrees with its own metadata or with `expected_maxlen` (the data set's or model's).
    """
    try:
        table = pq.read_table(io.BytesIO(fs.read_bytes(uri)))
    except pa.ArrowException as error:
        raise DataError(f"{uri}: not a readable Parquet file ({error})") from None
    raw_metadata = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw_metadata is None or {TOKENS_COLUMN, LABEL_COLUMN} - set(table.column_names):
        raise DataError(f"{uri}: not a split written by this pipeline (columns {table.column_names})")
    metadata = json.loads(raw_metadata)
    column_type = table.schema.field(TOKENS_COLUMN).type
    if not pa.types.is_fixed_size_list(column_type) or column_type.list_size != metadata.get("maxlen"):
        raise DataError(f"{uri}: {TOKENS_COLUMN} column {column_type} disagrees with maxlen={metadata.get('maxlen')}")
    if expected_maxlen is not None and column_type.list_size != expected_maxlen:
        raise DataError(f"{uri}: {column_type.list_size} tokens per review, but maxlen {expected_maxlen} is expected")
    rows = table.column(TOKENS_COLUMN).combine_chunks()
    if rows.null_count:
        raise DataError(f"{uri}: column '{TOKENS_COLUMN}' has {rows.null_count} null rows")
    flat = _integers(uri, TOKENS_COLUMN, rows.flatten(), np.int32)
    labels = _integers(uri, LABEL_COLUMN, table.column(LABEL_COLUMN).combine_chunks(), np.int8)
    return flat.reshape(table.num_rows, column_type.list_size), labels, metadata


def _integers(uri: str, column: str, values: pa.Array, dtype: type[np.integer]) -> np.ndarray:
    """A column's values as `dtype`; refuses nulls, non-integer types and values `dtype` cannot hold
    (a cast would wrap them around silently, past the range checks that come later)."""
    if not pa.types.is_integer(values.type):
        raise DataError(f"{uri}: column '{column}' must hold integers, not {values.type}")
    if values.null_count:
        raise DataError(f"{uri}: column '{column}' has {values.null_count} null values")
    array, limits = values.to_numpy(), np.iinfo(dtype)
    if array.size and (array.min() < limits.min or array.max() > limits.max):
        raise DataError(f"{uri}: column '{column}' holds {array.min()}..{array.max()}, beyond {limits.dtype}")
    return array.astype(dtype, copy=False)


def store_dataset(
    splits: dict[str, Reviews], maxlen: int, metadata: dict, storage_root: str, vocabulary: Vocabulary | None = None
) -> DatasetInfo:
    """Pads every split and writes `<root>/data/<key>/<split>.parquet` and the vocabulary; reuses a
    complete folder.

    The key hashes the padded content and `metadata`, so equal data share a folder.
    """
    padded = {name: (pad_reviews(splits[name], maxlen), splits[name].labels) for name in SPLITS}
    key = dataset_key(metadata, content_digest(padded))
    folder = dataset_uri(storage_root, key)
    uris = {name: fs.join(folder, split_name(name)) for name in SPLITS}
    if all(fs.exists(uri) for uri in uris.values()):
        log.info("data set %s already stored at %s; reusing it", key, folder)
    else:
        for name in SPLITS:
            write_split(uris[name], *padded[name], {**metadata, "split": name}, splits[name].texts)
            log.info("stored %s: %d reviews x %d ids", uris[name], len(splits[name]), maxlen)
    vocabulary_uri = None if vocabulary is None else store_vocabulary(vocabulary, folder)
    rows = {name: len(splits[name]) for name in SPLITS}
    return DatasetInfo(
        key=key, uri=folder, split_uris=uris, rows=rows, metadata=metadata, vocabulary_uri=vocabulary_uri
    )
