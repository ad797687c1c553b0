"""Scoring a saved model on the stored test split: loss, accuracy, ROC AUC, confusion matrix."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.config import EVALUATION_BATCH
from tasks.errors import PipelineError
from tasks.storage import fs
from tasks.storage.layout import MODEL_NAME
from tasks.training.guard import majority_rate
from tasks.training.splits import open_split

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

THRESHOLD = 0.5  # Keras' BinaryAccuracy counts a prediction as positive when p > 0.5


class ClassificationMetrics(BaseModel):
    """Binary metrics of probabilities against 0/1 labels, as every metrics file records them."""

    model_config = ConfigDict(frozen=True)

    loss: float
    accuracy: float
    roc_auc: float | None  # None when one class is absent
    confusion_matrix: list[list[int]]  # rows: true negative/positive; columns: predicted negative/positive
    majority_rate: float  # always guessing the more frequent class scores this
    examples: int

    def value(self, name: str) -> float | None:
        """A scalar metric by name, as the config names the one that ranks models (`accuracy`, `loss`...)."""
        return getattr(self, name)


def load_model(uri: str) -> keras.Model:
    """A saved model from a path or storage URI, in Keras' safe mode (no arbitrary code from the file).

    Raises PipelineError naming `uri` when Keras refuses the file, e.g. for a Python lambda inside.
    """
    import keras  # here, not at the top: a process that only reads metrics never loads TensorFlow

    uri = str(uri)
    if not fs.is_local(uri):
        return load_model_bytes(fs.read_bytes(uri), uri)
    try:
        return keras.models.load_model(fs.filesystem(uri)[1], compile=False, safe_mode=True)
    except ValueError as error:  # how Keras refuses unsafe or unknown content
        raise PipelineError(f"{uri}: cannot load model ({error})") from None


def load_model_bytes(data: bytes, name: str = "model") -> keras.Model:
    """A saved model from its bytes (already checked by the caller), in Keras' safe mode; raises
    PipelineError naming `name` when Keras refuses them."""
    import keras

    with tempfile.TemporaryDirectory() as folder:  # Keras reads .keras archives from local files only
        local = Path(folder) / MODEL_NAME
        local.write_bytes(data)
        try:
            return keras.models.load_model(local, compile=False, safe_mode=True)
        except ValueError as error:  # how Keras refuses unsafe or unknown content
            raise PipelineError(f"{name}: cannot load model ({error})") from None


def score(model: keras.Model, token_ids: np.ndarray) -> np.ndarray:
    """Positive-sentiment probabilities for padded ids of shape (n, maxlen)."""
    return model.predict(token_ids, batch_size=EVALUATION_BATCH, verbose=0).reshape(-1)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> ClassificationMetrics:
    """Binary metrics of probabilities against 0/1 labels; ROC AUC is None when one class is absent."""
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score  # on first use

    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = (probabilities > THRESHOLD).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return ClassificationMetrics(
        loss=float(log_loss(labels, probabilities, labels=[0, 1])),
        accuracy=float(accuracy_score(labels, predicted)),
        roc_auc=float(roc_auc_score(labels, probabilities)) if both_classes else None,
        confusion_matrix=confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        majority_rate=majority_rate(labels),
        examples=len(labels),
    )


def evaluate_model(model_path: str, test_uri: str) -> ClassificationMetrics:
    """Test-set metrics of the model saved at `model_path`, logged."""
    metrics = measure(load_model(model_path), test_uri)
    log_metrics(model_path, metrics)
    return metrics


def measure(model: keras.Model, test_uri: str) -> ClassificationMetrics:
    """Test-set metrics of `model`, scoring the stored test split `EVALUATION_BATCH` rows at a time
    (the batches a whole-array `score` makes, so the same probabilities); it keeps only the labels
    and one probability per row."""
    labels, probabilities = [], []
    with open_split(test_uri, expected_maxlen=model.input_shape[1]) as split:
        for token_ids, batch_labels in split.batches(EVALUATION_BATCH):
            probabilities.append(score(model, token_ids.astype(np.int32)))  # the models' input type
            labels.append(batch_labels)
    return classification_metrics(np.concatenate(labels), np.concatenate(probabilities))


def log_metrics(name: str, metrics: ClassificationMetrics) -> None:
    log.info(
        "test of %s: loss=%.4f accuracy=%.4f roc_auc=%s",
        name,
        metrics.loss,
        metrics.accuracy,
        "n/a" if metrics.roc_auc is None else f"{metrics.roc_auc:.4f}",
    )
