"""The pipeline's one typed configuration: CLI flags and deployment parameters both become this.

Each stage receives only its own part (data / model / training / storage) plus the run's seed.
Defaults are the reference recipe: keras imdb with 500 words, 100 tokens, an 80/20 train/val split
with random_state=42, SimpleRNN(8), RMSprop(1e-4), batch 64, up to 100 epochs, patience 3.
"""

from __future__ import annotations

import math
import os
import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.errors import DataError
from tasks.storage.fs import without_credentials
from tasks.storage.layout import DEFAULT_ROOT
from tasks.training.variants import DEFAULT_VARIANTS, VARIANTS
from tasks.training.variants import get as get_variant

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
WINDOW_PATTERN = re.compile(r"all|latest|last:(\d{1,9})")  # own reviews: which snapshots a run reads
# Schemes the storage layer (fsspec) is wired for; "" is a plain local path.
STORAGE_SCHEMES = ("", "file", "s3")
# Every model has ids 0 (pad), 1 (start), 2 (oov) and at least one real word.
MIN_NUM_WORDS = 4
# Ids are stored as int32 and Parquet's fixed-size lists count their width in an int32: past this,
# a vocabulary or review length cannot be stored at all, whatever the memory.
INT32_MAX = 2**31 - 1
# A week: beyond any real network read or training run; far larger values (1e12 s) overflow the OS timers.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
# A signed link in the UI is a bearer credential for as long as it lives: an hour covers looking at
# a run just after it ends; later, `make verify` or an S3 client with one's own credentials serves.
MAX_PRESIGN_MINUTES = 60
ENVIRONMENT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# A share or distance: a finite number from 0 to 1.
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _not_blank(value: str, message: str) -> str:
    """`value` without surrounding blanks; ValueError(message) when nothing is left."""
    if not value.strip():
        raise ValueError(message)
    return value.strip()


def _without_secrets(value: str, advice: str) -> str:
    """`value` unless it carries credentials (a user, a password, a query or a fragment), which a
    config must not hold: Prefect records it as a flow run's parameter, shown by the UI and kept in
    its database. The error shows `value` hidden, never as given."""
    if (shown := without_credentials(value)) != value:
        raise ValueError(f"{shown} carries credentials, which a run's parameters must not hold: {advice}")
    return value


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReviewFile(_Part):
    """One file of one's own reviews, the snapshot it belongs to and the sha256 of its content."""

    uri: str
    sha256: str
    snapshot: str = "."  # "." : directly under the prefix

    @field_validator("sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str) -> str:
        if not SHA256_PATTERN.match(value.lower()):
            raise ValueError("a file's sha256 must be 64 hexadecimal characters")
        return value.lower()


class DataConfig(_Part):
    """Where the reviews come from and how they are turned into fixed-width id sequences."""

    source: str = Field(
        "auto",
        description="keras | offline | auto, a URI/path of an imdb.npz mirror, or a file or folder/prefix of "
        "your own labelled reviews (.csv, .jsonl, optionally .gz, or .parquet)",
    )
    source_sha256: str | None = Field(None, description="expected sha256 of a mirror's imdb.npz (keras: built in)")
    source_url_env: str | None = Field(
        None,
        description="name of an environment variable holding the source's full URL, with the user, token or "
        "signature that the source itself shows as *** (deployments; the command line hides a --source's "
        "credentials by itself)",
    )
    cache_dir: str = Field(".cache/datasets", description="where downloads are kept and reused")
    download_timeout_seconds: float = Field(
        30.0, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False, description="per network read"
    )
    num_words: int = Field(500, ge=MIN_NUM_WORDS, le=INT32_MAX, description="vocabulary size: ids >= it become oov")
    maxlen: int = Field(100, ge=1, le=INT32_MAX, description="tokens per review after front padding/truncation")
    val_fraction: float = Field(0.2, gt=0, lt=1, allow_inf_nan=False, description="share of the training part held out")
    # Own reviews only: the sources above come with their test split.
    test_fraction: float = Field(
        0.2, gt=0, lt=1, allow_inf_nan=False, description="own reviews: share held out for test (by text hash)"
    )
    text_column: str = Field("text", min_length=1, description="own reviews: the column holding the review text")
    label_column: str = Field("label", min_length=1, description="own reviews: the column holding 0/1 or neg/pos")
    window: str = Field(
        "all",
        description="own reviews: the snapshots (sub-folders, by name) to train on: all, latest or last:N",
    )
    files: tuple[ReviewFile, ...] = Field(
        (),
        description="own reviews: read exactly these files, each checked against its sha256, instead of "
        "listing the source (make reproduce sets them from a run's manifest)",
    )

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        value = _not_blank(value, "source must be keras, offline, auto or a URI")
        shown = without_credentials(value)
        return _without_secrets(
            value, f"give {shown} as the source and its full URL in the environment variable named by source_url_env"
        )

    @field_validator("window")
    @classmethod
    def _window_names_snapshots(cls, value: str) -> str:
        window = value.strip().lower()
        match = WINDOW_PATTERN.fullmatch(window)
        if match is None:
            raise ValueError(f"window must be all, latest or last:N, not {value!r}")
        if match.group(1) is not None and int(match.group(1)) == 0:
            raise ValueError("window last:0 picks no snapshot; use last:N with N >= 1 (or latest, or all)")
        return window

    @field_validator("source_url_env")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not ENVIRONMENT_NAME_PATTERN.fullmatch(value):
            raise ValueError(f"source_url_env must name an environment variable (letters, digits, _), not {value!r}")
        return value

    @field_validator("source_sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_PATTERN.match(value.lower()):
            raise ValueError("source_sha256 must be 64 hexadecimal characters")
        return value.lower() if value else value


class ModelConfig(_Part):
    """Which variants to train and their layer sizes."""

    variants: tuple[str, ...] = Field(DEFAULT_VARIANTS, description="variants to train, in order")
    # The layer sizes variants read (each variant's builder names the ones it uses).
    rnn_units: int = Field(8, ge=1, description="SimpleRNN units")
    embedding_dim: int = Field(16, ge=1, description="embedding width of the embedding variant")

    @field_validator("variants")
    @classmethod
    def _variants_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one variant is needed")
        unknown = [name for name in value if name not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
        if len(set(value)) != len(value):
            raise ValueError("variants must not repeat")
        return value


# Recipe presets: values a preset gives the fields it names; options given explicitly win.
# reference is the recipe the README describes, as is. robust was chosen from seeds on the offline
# corpus: at 1e-4 early stopping often fires on the early plateau, and patience 5 from epoch 10
# alone did not help; 1e-3 with patience 5 from epoch 5 reaches the same accuracy in about a third
# of the epochs and stops on the plateau less often (MODEL_QUALITY.md, `make seeds`).
RECIPES: dict[str, dict[str, float | int]] = {
    "reference": {"learning_rate": 1e-4, "patience": 3, "start_from_epoch": 0, "min_delta": 0.0},
    "robust": {"learning_rate": 1e-3, "patience": 5, "start_from_epoch": 5, "min_delta": 0.0},
}
# A model whose best val accuracy is within this of always guessing the majority class learned
# nothing useful (seen here: embedding seeds stopping at epoch 12 with 0.535 on a balanced split).
STALL_MARGIN = 0.02
MAX_STALL_MARGIN = 0.5  # beyond this every model, however good, would count as stalled
# Under-trained: best val accuracy more than this below the bag-of-words baseline's. On the offline
# corpus (baseline val 0.79) 20 seeds per preset and variant gave two groups: attempts that learned
# ended at most 0.04 below the baseline (median 0.013), attempts stopped on the early plateau
# 0.06-0.26 below. 0.03 restarts every one of the second group and the weakest few of the first,
# which kept every published model within 0.015 of the median (MODEL_QUALITY.md).
BASELINE_MARGIN = 0.03
# Restarts after an unhealthy attempt. With the reference recipe 4 of 20 one-hot and 10 of 20
# embedding first attempts were unhealthy, 17 of 37 embedding attempts in all; at 0.5 per attempt,
# 9 restarts leave about 0.5**10 = 0.1 % that all ten fail (then nothing is promoted). Restarts
# cost only when an attempt fails: no seed of that sweep needed more than 3.
RESTARTS = 9
MAX_RESTARTS = 20
MAX_SEEDS = 32  # beyond this, a sweep belongs in `make seeds`, not in one run
# The baseline fits on at most this many training reviews, a seeded sample beyond it: its sparse
# counts take about 1 KB per review (80 distinct ids at maxlen 100), so its memory stays near
# 200 MB at any data size. Ten times the offline corpus's 20,000 (whose result it leaves unchanged);
# 501 weights gain nothing measurable past tens of thousands of reviews (docs/concepts/guard.md).
BASELINE_MAX_ROWS = 200_000


# Below this many ids per epoch (train rows x maxlen), XLA's compile, 3-5 s per training here, costs
# more than it saves: an epoch of the tests' 192 reviews of 20 ids takes milliseconds either way,
# while on the recipe's 16,000 reviews of 100 ids XLA cuts an epoch from about 3.7 s to 0.8 s.
XLA_MIN_EPOCH_IDS = 100_000


class TrainingConfig(_Part):
    """The optimiser and stopping rule shared by every variant, and how many seeds train each."""

    recipe: Literal["reference", "robust"] = Field(
        "reference", description="preset for learning rate and early stopping; explicit options override it"
    )
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(
        RECIPES["reference"]["learning_rate"], gt=0, le=1, allow_inf_nan=False, description="RMSprop learning rate"
    )
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(3, ge=0, description="epochs without val_loss improvement before stopping")
    start_from_epoch: int = Field(0, ge=0, description="epochs before early stopping may stop a run")
    min_delta: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="smallest val_loss drop that counts as improvement"
    )
    timeout_seconds: int = Field(
        4 * 3600, ge=1, le=MAX_TIMEOUT_SECONDS, description="a variant's training longer than this fails the run"
    )
    seeds: int = Field(1, ge=1, le=MAX_SEEDS, description="seeds trained per variant; the best val_loss is published")
    restarts: int = Field(
        RESTARTS,
        ge=0,
        le=MAX_RESTARTS,
        description="retrainings with a derived seed while a variant is under-trained or stalled",
    )
    baseline_margin: Share = Field(
        BASELINE_MARGIN,
        description="under-trained: best val accuracy more than this below the baseline's (1 turns it off)",
    )
    stall_margin: float = Field(
        STALL_MARGIN,
        ge=0,
        lt=MAX_STALL_MARGIN,
        allow_inf_nan=False,
        description="stalled: best val accuracy within this of the val majority-class rate",
    )
    xla: Literal["auto", "on", "off"] = Field(
        "auto",
        description=f"compile the training steps with XLA: on, off, or auto (on once an epoch holds "
        f"{XLA_MIN_EPOCH_IDS:,} ids or more)",
    )
    baseline_max_rows: int = Field(
        BASELINE_MAX_ROWS,
        ge=2,
        description="the baseline fits on at most this many training reviews (a seeded sample beyond)",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, values):
        if not isinstance(values, dict):
            return values
        recipe = values.get("recipe", "reference")
        return {**RECIPES.get(recipe, {}), **values}

    def uses_xla(self, epoch_ids: int) -> bool:
        """Whether a training whose epoch holds `epoch_ids` ids (train rows x maxlen) compiles with XLA."""
        return self.xla == "on" or (self.xla == "auto" and epoch_ids >= XLA_MIN_EPOCH_IDS)


class StorageConfig(_Part):
    """Where data sets and runs are published (a local path, file:// or s3:// URI)."""

    root: str = Field(DEFAULT_ROOT, description="storage root: data/ and runs/ live under it")
    work_dir: str = Field(".work", description="local scratch for checkpoints before publishing")
    presign_minutes: int = Field(
        0,
        ge=0,
        le=MAX_PRESIGN_MINUTES,
        description="put signed https links to a run's S3 files in the Prefect UI, valid this many minutes: "
        "anyone who can read the UI can download them until then, and the links show the access key id "
        "(0: s3:// URIs only)",
    )

    @field_validator("root")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("storage root must not be empty")
        _without_secrets(value, "S3 credentials come from the AWS chain (environment, profile, instance role)")
        scheme = urlparse(value).scheme
        # A Windows-style drive letter parses as a one-letter scheme; treat it as a path.
        if len(scheme) > 1 and scheme not in STORAGE_SCHEMES:
            raise ValueError(f"unknown storage scheme {scheme!r}; use a path, file:// or s3://")
        return value.rstrip("/") or "/"


# A split needs enough rows for its accuracy to mean something: at 50 rows one review moves it by
# 0.02, the stall margin. Real splits have thousands.
MIN_SPLIT_ROWS = 50
# The offline corpus repeats 33 of its 5,000 test reviews (0.66 %) exactly in train or val: 30 are
# reviews that IMDB itself holds twice, 3 differ only in words outside the 500-word vocabulary.
# 2 % is three times that and far below a test set that largely repeats its training set.
MAX_OVERLAP = 0.02
# Jensen-Shannon distance (base 2: 0 same distribution, 1 disjoint) of lengths, token frequencies
# and labels. Random halves of the offline corpus differ by up to 0.05 in length (sampling noise
# over 51 bins), 0.01 in token frequency and 0.007 in labels; real changes measured on it give
# 0.20 (vocabulary of 1,000 words instead of 500), 0.27 (an 80/20 label balance), 0.45 (only
# reviews over 150 words) and 0.97 (Rotten Tomatoes snippets). 0.1 is twice the noise; a label
# balance of about 62/38 reaches it.
MAX_DRIFT = 0.1


class DataCheckConfig(_Part):
    """Checks that stop a bad data set before training, and the drift that is worth a warning."""

    min_split_rows: int = Field(MIN_SPLIT_ROWS, ge=2, description="fewest reviews a train, val or test split may have")
    max_overlap: Share = Field(
        MAX_OVERLAP, description="largest share of test reviews that may repeat a train or val review exactly"
    )
    max_drift: Share = Field(
        MAX_DRIFT, gt=0, description="Jensen-Shannon distance to the champion's data above which drift is warned about"
    )


class ChampionConfig(_Part):
    """The gate that decides whether this run's best variant becomes the model to use."""

    promote: Literal["never", "auto", "always"] = Field(
        "auto", description="auto: only when strictly better on the same data set; always; never"
    )
    metric: Literal["accuracy", "roc_auc", "loss"] = Field(
        "accuracy", description="test metric that ranks variants and champions (loss: lower is better)"
    )


# A sweep varies the layer sizes (every ModelConfig field but the variants) and these fields of the
# recipe. Seeds are an axis of their own (--seeds); the guard's margins, restarts and the timeout
# judge or bound a training rather than shape the model.
SWEEP_TRAINING_FIELDS = ("batch_size", "learning_rate", "max_epochs", "patience", "start_from_epoch", "min_delta")
# Points per variant, each trained once per seed: beyond this a search belongs in a tuner, not one run.
MAX_SWEEP_POINTS = 64
# Schemes of a Dask scheduler's address that a worker of another machine can reach.
DASK_SCHEMES = ("tcp", "tls")
SweepValues = tuple[int | float, ...]


def sweep_section(field: str) -> str:
    """`model` or `training`: the config part that holds a swept field; ValueError for any other."""
    if field in ModelConfig.model_fields and field != "variants":
        return "model"
    if field in SWEEP_TRAINING_FIELDS:
        return "training"
    known = [name for name in ModelConfig.model_fields if name != "variants"] + list(SWEEP_TRAINING_FIELDS)
    raise ValueError(f"{field!r} cannot be swept; sweepable: {', '.join(known)}")


def parse_sweep_words(words: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The command line's `field=v1,v2 ...` words as {field: values}; ValueError for a malformed word."""
    sweep: dict[str, tuple[str, ...]] = {}
    for word in words:
        field, equals, listed = word.partition("=")
        values = tuple(value.strip() for value in listed.split(",") if value.strip())
        if not equals or not field.strip() or not values:
            raise ValueError(f"{word!r} is not FIELD=VALUE[,VALUE...]")
        if field.strip() in sweep:
            raise ValueError(f"{field.strip()} is swept twice")
        sweep[field.strip()] = values
    return sweep


def check_dask_address(value: str) -> str:
    """A Dask scheduler's address, `tcp://host:port` or `tls://host:port`, without blanks or a
    trailing slash; ValueError for anything else (a bare host:port, a missing port, a path)."""
    address = urlparse(value.strip())
    if address.scheme not in DASK_SCHEMES or not address.hostname or address.path not in ("", "/"):
        raise ValueError(f"{value!r} is not a scheduler address like tcp://host:8786")
    try:
        port = address.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"{value!r} names no port; a scheduler listens on one (tcp://host:8786)")
    return value.strip().rstrip("/")


class PipelineConfig(_Part):
    """Everything one run needs; the Prefect flow's single parameter."""

    seed: int = Field(42, ge=0, lt=2**32, description="seeds the train/val split and weight initialisation")
    refresh: bool = Field(False, description="recompute every stage instead of reusing cached results")
    skip_unchanged: bool = Field(
        False,
        description="train and publish nothing when the data, the code and the config are those of the latest "
        "published run (which the run then names)",
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    checks: DataCheckConfig = DataCheckConfig()
    storage: StorageConfig = StorageConfig()
    champion: ChampionConfig = ChampionConfig()
    sweep: dict[str, SweepValues] = Field(
        {},
        description="model and training fields with lists of values (rnn_units=8,16 learning_rate=1e-4,1e-3): "
        "every combination trains per seed; per variant the lowest val_loss is published",
    )
    dask_address: str | None = Field(
        None,
        description="scheduler of an existing Dask cluster (tcp://host:port) that runs every training; "
        "without it IMDB_DASK_ADDRESS, else this machine",
    )

    @field_validator("sweep", mode="before")
    @classmethod
    def _sweep_from_words(cls, value):
        """Takes the command line's words too; refuses a field no sweep may vary before its values."""
        sweep = parse_sweep_words(value) if isinstance(value, list | tuple) else value
        for field in sweep if isinstance(sweep, dict) else ():
            sweep_section(field)
        return sweep

    @field_validator("dask_address")
    @classmethod
    def _dask_address_reachable(cls, value: str | None) -> str | None:
        return None if value is None else check_dask_address(value)

    @model_validator(mode="after")
    def _sweep_values_valid(self) -> PipelineConfig:
        """Each swept field exists, and each of its values is one the config accepts as that
        field's option (its range, and the memory estimate of a training with it)."""
        points = 1
        for field, values in self.sweep.items():
            section = sweep_section(field)
            if len(set(values)) != len(values):
                raise ValueError(f"sweep: {field} repeats a value")
            unswept = self.model_dump(exclude={"sweep"})
            for value in values:
                try:
                    PipelineConfig.model_validate({**unswept, section: {**unswept[section], field: value}})
                except ValidationError as error:
                    message = error.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ValueError(f"sweep: {field}={value}: {message}") from None
            points *= len(values)
        if points > MAX_SWEEP_POINTS:
            raise ValueError(f"sweep: {points} points, more than {MAX_SWEEP_POINTS}")
        return self

    @model_validator(mode="after")
    def _fits_in_memory(self) -> PipelineConfig:
        """Refuses sizes whose estimated peak memory exceeds the machine's share, before anything
        is allocated: an absurd size is one error line, never an out-of-memory kill."""
        per_process, processes, term, fields = estimate_peak_bytes(self)
        needed, available = per_process * processes, machine_memory_bytes()
        if needed > MEMORY_SHARE * available:
            # When one training process would fit, the trainings side by side are what does not.
            fits_alone = per_process <= MEMORY_SHARE * available
            side_by_side = "training.seeds" if self.training.seeds > 1 else "model.variants"
            field = side_by_side if fits_alone else _furthest_above_default(self, fields)
            raise ValueError(
                f"{field}: {_shown(_value(self, field))} would need about {_gib(needed)} of memory ({term}), "
                f"more than {MEMORY_SHARE:.0%} of this machine's {_gib(available)}"
            )
        return self


# Peak memory is estimated from the sizes before any data is read, and again from the real number of
# reviews once the split stage has counted them. Before that, rows: the canonical IMDB file holds
# 25,000 train and 25,000 test reviews.
ESTIMATE_ROWS = 50_000
# The data is streamed: what grows with the reviews is a few numbers each, whatever their length: its
# split, label and fingerprints in the data stages (pandas' deduplication of one's own reviews needs
# ~40 bytes a row), a training process's shuffle order and labels. 16 values of 4 bytes a review.
REVIEW_BOOKKEEPING_VALUES = 16
# Rows of padded ids a stage holds at once: a stored row group (tasks/data/store.py's ROW_GROUP_ROWS)
# or a training process's window of its memory-mapped split.
STREAMED_ROWS = 16_384
BYTES_PER_VALUE = 4  # ids are int32, weights and activations float32
# A row group is held as read and as converted: two copies at most.
DATA_COPIES = 2
# Weights, their gradients, RMSprop's mean-square accumulator, and the best weights kept by early
# stopping (restore_best_weights): four float32 values per parameter. Every variant ends in
# SimpleRNN(rnn_units) and a sigmoid unit; the core they share counts the recurrent layer's input
# kernel for a one-hot word (num_words wide) and for an embedded one (embedding_dim wide), a bound
# for either input. A variant's own weights beyond it (an embedding table) come from its footprint
# in the registry (tasks/training/variants.py), so a new variant needs no change here.
WEIGHT_COPIES = 4
# Backpropagation through time keeps each timestep's input and output of the recurrent layer, and
# their gradients: about twice the forward activations of a batch.
ACTIVATION_COPIES = 2
# Evaluation scores the test split with the published form of a model, this many reviews per batch
# (inference only, so a large batch is cheap): the one-hot variant's published form builds the
# one-hot input of a whole batch in memory, which is what keeps this batch small. Raw-text scoring
# uses the training form instead (tasks/scoring/scorer.py's SCORING_BATCH).
EVALUATION_BATCH = 1024
# TensorFlow, the OS and Prefect need the rest; an estimate above this share of the machine's
# memory would risk an out-of-memory kill (the estimate leaves out their own few hundred MiB).
MEMORY_SHARE = 0.8
# The fields behind each term, in the order a tie names them.
DATA_FIELDS = ("data.maxlen",)
WEIGHT_FIELDS = ("data.num_words", "model.embedding_dim", "model.rnn_units")
ACTIVATION_FIELDS = ("training.batch_size", "data.maxlen", "model.embedding_dim", "model.rnn_units")
EVALUATION_FIELDS = ("data.num_words", "data.maxlen")


def estimate_peak_bytes(config: PipelineConfig, rows: int = ESTIMATE_ROWS) -> tuple[int, int, str, tuple[str, ...]]:
    """Estimated peak memory in bytes of one training process on `rows` reviews, how many run side
    by side (every variant and seed, one process per core, each holding its own model, batches and
    its streamed window of the data), the largest term's description and the fields behind it."""
    data, model = config.data, config.model
    words, maxlen, units, width = data.num_words, data.maxlen, model.rnn_units, model.embedding_dim
    # One process trains one variant at a time: the largest footprint of those configured counts.
    footprints = [get_variant(name).footprint_of(words, maxlen, model) for name in model.variants]
    core = words * units + width * units + units * units + 2 * units
    parameters = core + max(footprint.weights for footprint in footprints)
    per_process = {
        "a streamed window of padded ids": (STREAMED_ROWS * maxlen * DATA_COPIES, DATA_FIELDS),
        "per-review bookkeeping": (rows * REVIEW_BOOKKEEPING_VALUES, DATA_FIELDS),
        "weights and optimizer state": (parameters * WEIGHT_COPIES, WEIGHT_FIELDS),
        "a training batch's activations": (
            config.training.batch_size * maxlen * (width + units) * ACTIVATION_COPIES,
            ACTIVATION_FIELDS,
        ),
        "the input an evaluation batch builds": (
            EVALUATION_BATCH * max(footprint.evaluation_input for footprint in footprints),
            EVALUATION_FIELDS,
        ),
    }
    trainings = len(model.variants) * config.training.seeds * math.prod(len(values) for values in config.sweep.values())
    processes = min(trainings, os.cpu_count() or 1)
    term, (_, fields) = max(per_process.items(), key=lambda item: item[1][0])
    return BYTES_PER_VALUE * sum(values for values, _ in per_process.values()), processes, term, fields


def refuse_unless_it_fits(config: PipelineConfig, rows: int) -> None:
    """Raises DataError, one line, when `rows` reviews would need more than the machine's share of
    memory: checked once the split stage knows the real count, before any stage that grows with it."""
    per_process, processes, term, _ = estimate_peak_bytes(config, rows)
    needed, available = per_process * processes, machine_memory_bytes()
    if needed > MEMORY_SHARE * available:
        raise DataError(
            f"{rows:,} reviews would need about {_gib(needed)} of memory ({term}), more than "
            f"{MEMORY_SHARE:.0%} of this machine's {_gib(available)}; train on fewer (--window) or a larger machine"
        )


def machine_memory_bytes() -> int:
    """Physical memory, or the cgroup's limit when a container sets a lower one."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            text = limit.read().strip()
    except OSError:
        return physical
    return min(physical, int(text)) if text.isdigit() else physical


def _shown(value: object) -> str:
    """A value as its option is written: variants comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _value(config: PipelineConfig, field: str) -> int:
    section, name = field.split(".")
    return getattr(getattr(config, section), name)


def _furthest_above_default(config: PipelineConfig, fields: tuple[str, ...]) -> str:
    """The field furthest above its default: the one a user most likely mistyped."""
    defaults = PipelineConfig()
    return max(fields, key=lambda field: _value(config, field) / _value(defaults, field))


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"


class ScoringConfig(_Part):
    """One batch-scoring run: which reviews, which model, where the predictions go; the scoring flow's parameter."""

    input: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        ..., description="CSV, Parquet or JSONL of raw reviews: a path, file:// or s3:// URI"
    )
    storage: StorageConfig = StorageConfig()
    output: str | None = Field(None, description="root for predictions/<batch_id>/ (default: the storage root)")
    text_column: str | None = Field(None, description="the reviews' column (default: review, else text)")
    id_column: str | None = Field(None, description="a column kept beside each prediction (default: the row number)")
    run: str | None = Field(None, description="a published run's URI to score with (default: the champion's)")
    variant: str | None = Field(None, description="the run's variant (default: the champion's, or the only one)")
    max_drift: Share = Field(
        MAX_DRIFT, gt=0, description="Jensen-Shannon distance to the model's training data above which drift is warned"
    )

    @field_validator("output")
    @classmethod
    def _output_scheme(cls, value: str | None) -> str | None:
        return None if value is None else StorageConfig(root=value).root

    @property
    def output_root(self) -> str:
        return self.output or self.storage.root


class WatchConfig(_Part):
    """One look at a prefix of one's own reviews for snapshots no published run has trained on; the
    data-watch flow's parameter."""

    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        "auto",
        description="the prefix of your own reviews to watch (path, file:// or s3://), as the pipeline's "
        "--source; a named source (auto, keras, offline) leaves nothing to watch",
    )
    storage: StorageConfig = StorageConfig()

    @field_validator("source")
    @classmethod
    def _source_without_secrets(cls, value: str) -> str:
        return _without_secrets(value, "own reviews are read with the AWS chain's credentials")
