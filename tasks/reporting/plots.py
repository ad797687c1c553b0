"""Learning curves and data set plots as PNG files. Figures are built with matplotlib's object API
(no pyplot), so no display or global backend state is involved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tasks.data.store import SPLITS
from tasks.storage.layout import CURVE_PLOTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tasks.training.sweeps import SweepSummary

FIGURE_SIZE = (6.4, 4.0)
DPI = 100


def _epochs(history: dict) -> list[int]:
    return [record["epoch"] for record in history["epochs"]]


def plot_curve(history: dict, metric: str, path: Path) -> Path:
    """Train vs val `metric` per epoch for one variant, the best epoch marked."""
    figure = _figure(FIGURE_SIZE)
    axes = figure.subplots()
    epochs = _epochs(history)
    axes.plot(epochs, [r[metric] for r in history["epochs"]], "o-", label=f"train {metric}")
    axes.plot(epochs, [r[f"val_{metric}"] for r in history["epochs"]], "s-", label=f"val {metric}")
    axes.axvline(history["best_epoch"], color="grey", linestyle=":", label="best val_loss")
    axes.set(title=f"{history['variant']}: {metric}", xlabel="epoch", ylabel=metric)
    axes.legend()
    return _save(figure, path)


def plot_history(history: dict, folder: Path) -> None:
    """The loss and accuracy plots of a variant's history in `folder`."""
    for metric, name in CURVE_PLOTS.items():
        plot_curve(history, metric, Path(folder) / name)


def plot_comparison(histories: dict[str, dict], path: Path) -> Path:
    """Val loss and val accuracy of every variant side by side."""
    figure = _figure((FIGURE_SIZE[0] * 2, FIGURE_SIZE[1]))
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


def plot_sweep(sweeps: dict[str, SweepSummary], path: Path) -> Path:
    """Val accuracy per sweep point, one panel per variant: each seed's best as a dot, their mean
    as a bar, the published point's bar outlined."""
    figure = _figure((FIGURE_SIZE[0], FIGURE_SIZE[1] * len(sweeps)))
    panels = figure.subplots(len(sweeps), 1, squeeze=False)[:, 0]
    for axes, (variant, sweep) in zip(panels, sweeps.items(), strict=True):
        rows = sweep.points
        positions = range(len(rows))
        axes.bar(
            positions,
            [row.mean_val_accuracy for row in rows],
            color="lightsteelblue",
            edgecolor=["black" if row.published else "none" for row in rows],
            label="mean over seeds",
        )
        for position, row in zip(positions, rows, strict=True):
            axes.plot([position] * len(row.val_accuracies), row.val_accuracies, "k.")
        axes.set_xticks(list(positions), [row.point.replace(" ", "\n") for row in rows], fontsize="small")
        axes.set(title=f"{variant}: best val accuracy per point (outlined: published)", ylabel="val accuracy")
        low = min(min(row.val_accuracies) for row in rows)
        axes.set_ylim(max(0.0, low - 0.05), 1.0)
    return _save(figure, path)


def plot_lengths(statistics: dict, path: Path) -> Path:
    """Review lengths before padding, one histogram per split (share of its reviews per bin), with
    `maxlen` marked: everything right of it is truncated."""
    figure = _figure(FIGURE_SIZE)
    axes = figure.subplots()
    width, limit = statistics["length_bins"]["width"], statistics["length_bins"]["limit"]
    for name in _split_names(statistics):
        split = statistics["splits"][name]
        counts = split["length_histogram"]
        shares = [count / max(split["rows"], 1) for count in counts]
        axes.stairs(shares, [index * width for index in range(len(counts) + 1)], label=f"{name} ({split['rows']:,})")
    axes.axvline(statistics["maxlen"], color="grey", linestyle=":", label=f"maxlen {statistics['maxlen']}")
    axes.set(
        title="review length before padding",
        xlabel=f"ids per review (last bin: {limit} and more)",
        ylabel=f"share of reviews per {width} ids",
    )
    axes.legend()
    return _save(figure, path)


def plot_labels(statistics: dict, path: Path) -> Path:
    """Negative and positive reviews per split, stacked, with the positive share written on each bar."""
    figure = _figure(FIGURE_SIZE)
    axes = figure.subplots()
    names = _split_names(statistics)
    negatives = [statistics["splits"][name]["labels"].get("0", 0) for name in names]
    positives = [statistics["splits"][name]["labels"].get("1", 0) for name in names]
    axes.bar(names, negatives, label="negative (0)")
    bars = axes.bar(names, positives, bottom=negatives, label="positive (1)")
    axes.bar_label(
        bars, labels=[f"{100 * statistics['splits'][name]['positive_share']:.1f} % positive" for name in names]
    )
    axes.set(title="label balance", ylabel="reviews")
    axes.margins(y=0.15)  # room for the share above the tallest bar
    axes.legend(loc="upper right")
    return _save(figure, path)


def _split_names(statistics: dict) -> list[str]:
    """The splits in the pipeline's order (data_checks.json sorts its keys), any other name last."""
    return sorted(statistics["splits"], key=lambda name: (*SPLITS, name).index(name))


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure  # on first use: a process that draws nothing never loads matplotlib

    return Figure(figsize=size)


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path
