"""Optional PNG plots of a run: training curves and a spike raster (needs matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PlotError", "plot_curves", "plot_feature_maps", "plot_raster", "require_matplotlib",
           "write_plots"]


class PlotError(RuntimeError):
    """matplotlib is not installed."""


def require_matplotlib() -> Any:
    """matplotlib.pyplot with the file-only Agg backend, or PlotError saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError("--plot needs matplotlib, which is not installed "
                        "(pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss and train/test accuracy per epoch (metrics.jsonl records)."""
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    epochs = [m["epoch"] for m in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [m["train_loss"] for m in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss (SPEC-3 cost)", title="loss")
    ax_acc.plot(epochs, [100 * m["train_accuracy"] for m in history], marker="o", label="train")
    ax_acc.plot(epochs, [100 * m["test_accuracy"] for m in history], marker="o", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_raster(
    input_spikes: np.ndarray,
    layer_spikes: Sequence[np.ndarray],
    path: str | Path,
    title: str = "",
) -> Path:
    """Spike raster of one sample: input (T, n_in) and each layer's (T, n_l) trains."""
    plt = require_matplotlib()
    trains = [np.asarray(input_spikes)] + [np.asarray(s) for s in layer_spikes]
    names = ["input"] + [f"layer {i + 1}" for i in range(len(layer_spikes))]
    names[-1] = "output"
    heights = [max(1.0, min(3.0, t.shape[1] / 200)) for t in trains]
    fig, axes = plt.subplots(len(trains), 1, figsize=(10, 2 + 1.6 * sum(heights)),
                             sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, train, name in zip(axes, trains, names):
        t, n = np.nonzero(train)
        ax.scatter(t, n, s=1 if train.shape[1] > 50 else 6, marker="|", color="k")
        ax.set_ylim(-0.5, train.shape[1] - 0.5)
        ax.set_ylabel(f"{name}\n({train.sum()} spikes)")
    axes[0].set_title(title)
    axes[-1].set_xlabel("time step")
    axes[-1].set_xlim(0, trains[0].shape[0])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_feature_maps(layer_spikes: Sequence[np.ndarray], shapes: Sequence[Sequence[int]], path: str | Path,
                      title: str = "") -> Path:
    """Spike counts of one sample's spatial layers (conv, pool) as images, one per channel (at
    most 16 per layer); layer_spikes[l] is (T, n_l) in the flat (c, x, y) order, shapes[l] its
    (channels, height, width)."""
    plt = require_matplotlib()
    maps = [(l, np.asarray(s).sum(axis=0).reshape(shape)) for l, (s, shape) in enumerate(zip(layer_spikes, shapes))
            if shape[1] > 1 or shape[2] > 1]
    cols = max(min(16, m.shape[0]) for _, m in maps)
    fig, axes = plt.subplots(len(maps), cols, figsize=(1.1 * cols, 1.3 * len(maps)), squeeze=False)
    for row, (l, counts) in enumerate(maps):
        for c in range(cols):
            ax = axes[row][c]
            ax.axis("off")
            if c < counts.shape[0]:
                ax.imshow(counts[c], cmap="magma", vmin=0, vmax=max(1, counts.max()))
        axes[row][0].set_title(f"layer {l + 1}: {counts.shape[0]} x {counts.shape[1]} x {counts.shape[2]}, "
                               f"{int(counts.sum())} spikes", fontsize=7, loc="left")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_plots(trainer: Any, out_dir: str | Path) -> list[Path]:
    """curves.png from the trainer's history, raster.png of test sample 0 and, for a network
    with spatial layers, feature_maps.png of its spike counts; augmented.png of a few training
    digits when the run augments them."""
    out_dir = Path(out_dir)
    paths = []
    if trainer.history:
        paths.append(plot_curves(trainer.history, out_dir / "curves.png"))
    idx = np.arange(1)
    spikes = trainer.test_source.spikes(idx)
    layers = trainer.net.forward(spikes)
    label = int(trainer.test_source.labels[0])
    counts = np.asarray(layers[-1][0]).sum(axis=0)
    title = f"test sample 0: label {label}, prediction {int(np.argmax(counts))}"
    paths.append(plot_raster(spikes[0], [s[0] for s in layers], out_dir / "raster.png", title))
    shapes = getattr(trainer.net, "shapes", None)
    if shapes is not None and any(h > 1 or w > 1 for _, h, w in shapes[1:]):
        paths.append(plot_feature_maps([s[0] for s in layers], shapes[1:], out_dir / "feature_maps.png", title))
    augment = trainer.config.augmentation()
    if augment.enabled:
        from .augment import plot_augmented

        paths.append(plot_augmented(trainer.train_set.images[:6], augment, trainer.config.seed,
                                    out_dir / "augmented.png", n=6))
    return paths
