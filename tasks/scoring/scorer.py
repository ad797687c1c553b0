"""Scoring raw review text with a published model: the champion by default, or a named run and variant.

The model and the vocabulary are read once through storage (a path or s3://), and their bytes are
checked against the run's manifest before use, so what scores is exactly what was published.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tasks.config import ModelConfig
from tasks.data.vocabulary import TextEncoder, parse_vocabulary
from tasks.errors import PipelineError
from tasks.registry import gate, publishing
from tasks.registry.records import verify_champion
from tasks.storage import fs
from tasks.storage.layout import MANIFEST_NAME, MODEL_NAME, VOCABULARY_NAME, variant_file
from tasks.training import build, evaluation, variants

log = logging.getLogger(__name__)

POSITIVE, NEGATIVE = "positive", "negative"
# Reviews per call when scoring raw text. Inference only, and with the fast form (`_fastest_form`: no
# one-hot input is ever built), so the batch can be 8x evaluation's (config.EVALUATION_BATCH): at
# 8,192 reviews a call the recurrent loop's per-step overhead is spread thin and a batch of inputs
# stays a few MiB.
SCORING_BATCH = 8192


@dataclass(frozen=True)
class ScoringModel:
    """A verified published model with the encoder of its vocabulary, and where both came from."""

    run_id: str
    variant: str
    model_uri: str
    model_sha256: str
    vocabulary_sha256: str
    model: keras.Model
    encoder: TextEncoder

    def provenance(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "variant": self.variant,
            "model_uri": self.model_uri,
            "model_sha256": self.model_sha256,
            "vocabulary_sha256": self.vocabulary_sha256,
        }


def resolve_run(storage_root: str, run_uri: str | None, variant: str | None) -> tuple[str, str]:
    """The run and variant to score with: `run_uri` and `variant` when given, else the champion's.

    Refuses a storage root without a champion, a champion.json that does not match its run's
    manifest, and a run of several variants when none is named.
    """
    if run_uri is None:
        record, _ = gate.read_champion(storage_root)
        if record is None:
            raise PipelineError(f"no champion under {storage_root}: run the pipeline first, or name a run with --run")
        if problems := verify_champion(record, whole_run=False):
            raise PipelineError(f"{record.run_uri}: {problems[0]}")
        return record.run_uri, variant or record.variant
    if variant is not None:
        return run_uri.rstrip("/"), variant
    variants = sorted(path.split("/")[0] for path in _manifest_paths(run_uri) if path.endswith(f"/{MODEL_NAME}"))
    if len(variants) != 1:
        raise PipelineError(f"{run_uri} has models {', '.join(variants) or 'none'}: name one with --variant")
    return run_uri.rstrip("/"), variants[0]


def _manifest_paths(run_uri: str) -> list[str]:
    manifest_uri = fs.join(run_uri, MANIFEST_NAME)
    if not fs.exists(manifest_uri):
        raise PipelineError(f"{manifest_uri} is missing: not a published run")
    return [entry["path"] for entry in fs.read_json(manifest_uri)["files"]]


def verified_bytes(run_uri: str, path: str) -> tuple[bytes, str]:
    """A run file's bytes and sha256, read once and checked against the run's manifest."""
    entry = publishing.manifest_entry(run_uri, path)
    if entry is None:
        raise PipelineError(f"{run_uri} has no {path} in its manifest")
    uri = fs.join(run_uri, path)
    content = fs.read_bytes(uri)
    digest = hashlib.sha256(content).hexdigest()
    if digest != entry["sha256"]:
        raise PipelineError(f"{uri}: sha256 {digest} differs from the manifest's {entry['sha256']}")
    return content, digest


def load_scoring_model(
    storage_root: str, run_uri: str | None = None, variant: str | None = None, *, verify_run: bool = False
) -> ScoringModel:
    """The model and encoder to score with, each checked against its run's manifest before use.

    `verify_run` also checks every other file of the run (batch scoring does; a single prediction
    needs only its two files).
    """
    run_uri, variant = resolve_run(storage_root, run_uri, variant)
    if verify_run and (problems := publishing.verify_run(run_uri)):
        raise PipelineError(f"{run_uri} does not verify: {problems[0]}")
    model_path = variant_file(variant, MODEL_NAME)
    model_bytes, model_sha256 = verified_bytes(run_uri, model_path)
    vocabulary_bytes, vocabulary_sha256 = verified_bytes(run_uri, VOCABULARY_NAME)
    vocabulary = parse_vocabulary(vocabulary_bytes, fs.join(run_uri, VOCABULARY_NAME))
    published = _load_model_bytes(model_bytes, fs.join(run_uri, model_path))
    model = _fastest_form(variant, published, run_uri, vocabulary.spec.num_words)
    if model.input_shape[1] != vocabulary.spec.maxlen:
        maxlen = vocabulary.spec.maxlen
        raise PipelineError(f"{model_path} takes {model.input_shape[1]} ids, its vocabulary gives {maxlen}")
    return ScoringModel(
        run_id=run_uri.rsplit("/", 1)[-1],
        variant=variant,
        model_uri=fs.join(run_uri, model_path),
        model_sha256=model_sha256,
        vocabulary_sha256=vocabulary_sha256,
        model=model,
        encoder=TextEncoder.of(vocabulary),
    )


def _load_model_bytes(content: bytes, uri: str) -> keras.Model:
    """Loads the verified bytes themselves (never a second read that could differ), in safe mode."""
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / MODEL_NAME
        local.write_bytes(content)
        try:
            return evaluation.load_model(str(local))
        except PipelineError as error:
            raise PipelineError(str(error).replace(str(local), uri)) from None


def _fastest_form(variant: str, published: keras.Model, run_uri: str, num_words: int) -> keras.Model:
    """The variant's training form carrying the published weights when it has one (the same function,
    faster: the one-hot variant's gather form never builds one-hot arrays); else the published model."""
    spec = variants.VARIANTS.get(variant)
    if spec is None or spec.build_for_training is None:
        return published
    manifest = fs.read_json(fs.join(run_uri, MANIFEST_NAME))
    config = ModelConfig.model_validate(manifest["config"]["model"])
    fast = build.build_training_model(variant, num_words, published.input_shape[1], config)
    fast.set_weights(published.get_weights())
    return fast


def score_texts(scoring: ScoringModel, texts: Sequence[str]) -> np.ndarray:
    """Positive-sentiment probabilities of raw review texts."""
    ids = scoring.encoder.encode(texts)
    return scoring.model.predict(ids, batch_size=SCORING_BATCH, verbose=0).reshape(-1)


def label_of(probability: float) -> str:
    return POSITIVE if probability > evaluation.THRESHOLD else NEGATIVE
