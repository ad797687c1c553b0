"""Learning curves as PNG files. Figures are built with matplotlib's object API (no pyplot), so
no display or global backend state is involved."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

FIGURE_SIZE = (6.4, 4.0)
DPI = 100


def _epochs(history: dict) -> list[int]:
    return [record["epoch"] for record in history["epochs"]]


def plot_curve(history: dict, metric: str, path: Path) -> Path:
    """Train vs val `metric` per epoch for one variant, the best epoch marked."""
    figure = Figure(figsize=FIGURE_SIZE)
    axes = figure.subplots()
    epochs = _epochs(history)
    axes.plot(epochs, [r[metric] for r in history["epochs"]], "o-", label=f"train {metric}")
    axes.plot(epochs, [r[f"val_{metric}"] for r in history["epochs"]], "s-", label=f"val {metric}")
    axes.axvline(history["best_epoch"], color="grey", linestyle=":", label="best val_loss")
    axes.set(title=f"{history['variant']}: {metric}", xlabel="epoch", ylabel=metric)
    axes.legend()
    return _save(figure, path)


def plot_history(history: dict, folder: Path) -> dict:
    """loss.png and accuracy.png of a variant's history in `folder`; returns the history."""
    for metric in ("loss", "accuracy"):
        plot_curve(history, metric, Path(folder) / f"{metric}.png")
    return history


def plot_comparison(histories: dict[str, dict], path: Path) -> Path:
    """Val loss and val accuracy of every variant side by side."""
    figure = Figure(figsize=(FIGURE_SIZE[0] * 2, FIGURE_SIZE[1]))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for variant, history in histories.items():
        epochs = _epochs(history)
        loss_axes.plot(epochs, [r["val_loss"] for r in history["epochs"]], label=variant)
        accuracy_axes.plot(epochs, [r["val_accuracy"] for r in history["epochs"]], label=variant)
    loss_axes.set(title="val loss", xlabel="epoch", ylabel="loss")
    accuracy_axes.set(title="val accuracy", xlabel="epoch", ylabel="accuracy")
    loss_axes.legend()
    accuracy_axes.legend()
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path
