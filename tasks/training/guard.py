"""The health rule every trained model is judged by, in one place: training (which attempts to
restart), the champion gate (which variants may be promoted) and evaluation (the majority rate)
all ask it, each with the margins of the run's own config.

A model is *stalled* when its accuracy is within the stall margin of always guessing the majority
class, and *under-trained* when its best val accuracy is more than the baseline margin below the
bag-of-words baseline's.
"""

from __future__ import annotations

import numpy as np


def majority_rate(labels: np.ndarray) -> float:
    """The accuracy of always guessing the more frequent class (0.0 for no labels)."""
    labels = np.asarray(labels)
    positive = float(np.mean(labels)) if len(labels) else 0.0
    return max(positive, 1.0 - positive)


def is_stalled(accuracy: float, majority: float, margin: float) -> bool:
    """At chance: no better than `margin` above the majority-class rate."""
    return accuracy <= majority + margin


def is_under_trained(best_val_accuracy: float, baseline_val_accuracy: float | None, margin: float) -> bool:
    """More than `margin` below the baseline's val accuracy (never, without a baseline)."""
    return baseline_val_accuracy is not None and best_val_accuracy < baseline_val_accuracy - margin
