"""Optional plots of a run (needs matplotlib): training curves (loss, accuracy, firing rates,
learning rate), a spike raster of one test sample with the output neurons' class labels, the
feature maps of a CNN; as PNG at print resolution (300 dpi), PDF or SVG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_io
from ..config import PRESETS
from ..data.augment import AugmentConfig, augment, square_images
from ..model.hyper import check_whole
from ..model.layers import Conv2d, Pool2d, Reservoir

__all__ = ["CLASS_NAMES", "PLOT_FORMATS", "PlotError", "class_names", "plot_curves", "plot_augmented",
           "plot_feature_maps", "plot_raster", "require_matplotlib", "save_figure", "write_plots"]

PLOT_FORMATS = ("png", "pdf", "svg")
PNG_DPI = 300  # print resolution

# Class names of the datasets whose classes are not just their index (hm2bp.data's label order).
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                      "sneaker", "bag", "ankle boot"),
    "emnist-balanced": tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"),
}


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


def class_names(dataset: str, n_classes: int) -> list[str]:
    """The names of a dataset's classes (digits: their index)."""
    names = CLASS_NAMES.get(dataset)
    return list(names) if names is not None and len(names) == n_classes else [str(c) for c in range(n_classes)]


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save in the format of path's suffix (PLOT_FORMATS; PNG at PNG_DPI) and close the figure.
    PDF and SVG keep their text as text (TrueType fonts in PDF), so it stays editable."""
    import matplotlib

    plt = require_matplotlib()
    path = Path(path)
    fmt = path.suffix[1:]
    try:
        if fmt not in PLOT_FORMATS:
            raise ValueError(f"plot format must be one of {', '.join(PLOT_FORMATS)}, got {path.name!r}")
        with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
            safe_io.atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=PNG_DPI if fmt == "png"
                                                              else "figure"), what="plot")
    finally:
        plt.close(fig)
    return path


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Per epoch (metrics.jsonl records): loss; train, validation and test accuracy; firing rate
    of each layer on the training and test samples; learning rate."""
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    epochs = [m["epoch"] for m in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    (ax_loss, ax_acc), (ax_rate, ax_lr) = axes
    ax_loss.plot(epochs, [m["train_loss"] for m in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss (spike-count cost)", title="loss")
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation"),
                       ("test_accuracy", "test")):
        if all(key in m for m in history):
            ax_acc.plot(epochs, [100 * m[key] for m in history], marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend()
    n_layers = len(history[0]["firing_rate"])
    for layer in range(n_layers):
        name = "output" if layer == n_layers - 1 else f"layer {layer + 1}"
        line, = ax_rate.plot(epochs, [m["firing_rate"][layer] for m in history], marker="o",
                             label=f"{name} (train)")
        ax_rate.plot(epochs, [m["test_firing_rate"][layer] for m in history], ls="--",
                     color=line.get_color(), label=f"{name} (test)")
    ax_rate.set(xlabel="epoch", ylabel="spikes per neuron per step", title="firing rate")
    ax_rate.legend(fontsize=7)
    ax_lr.plot(epochs, [m["lr"] for m in history], marker="o")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_raster(
    input_spikes: np.ndarray,
    layer_spikes: Sequence[np.ndarray],
    path: str | Path,
    title: str = "",
    classes: Sequence[str] | None = None,
    layer_names: Sequence[str | None] | None = None,
) -> Path:
    """Spike raster of one sample: input (T, n_in) and each layer's (T, n_l) trains; classes:
    names of the output neurons (tick labels of the output panel); layer_names: a panel name per
    layer where it should not be "layer k" (e.g. "reservoir"), None elsewhere."""
    plt = require_matplotlib()
    trains = [np.asarray(input_spikes)] + [np.asarray(s) for s in layer_spikes]
    names = ["input"] + [(layer_names[i] if layer_names and layer_names[i] else f"layer {i + 1}")
                         for i in range(len(layer_spikes))]
    names[-1] = "output"
    heights = [max(1.0, min(3.0, t.shape[1] / 200)) for t in trains]
    fig, axes = plt.subplots(len(trains), 1, figsize=(10, 2 + 1.6 * sum(heights)),
                             sharex=True, gridspec_kw={"height_ratios": heights})
    for ax, train, name in zip(axes, trains, names):
        t, n = np.nonzero(train)
        ax.scatter(t, n, s=1 if train.shape[1] > 50 else 6, marker="|", color="k")
        ax.set_ylim(-0.5, train.shape[1] - 0.5)
        ax.set_ylabel(f"{name}\n({train.sum()} spikes)")
    if classes is not None and len(classes) == trains[-1].shape[1] <= 50:
        counts = trains[-1].sum(axis=0)
        axes[-1].set_yticks(range(len(classes)),
                            [f"{c} ({int(k)})" for c, k in zip(classes, counts)], fontsize=6)
    axes[0].set_title(title)
    axes[-1].set_xlabel("time step")
    axes[-1].set_xlim(0, trains[0].shape[0])
    fig.tight_layout()
    return save_figure(fig, path)


def plot_feature_maps(layer_spikes: Sequence[np.ndarray], shapes: Sequence[Sequence[int]], path: str | Path,
                      title: str = "") -> Path:
    """Spike counts of one sample's spatial layers (conv, pool) as images, one per channel (at
    most 16 per layer); layer_spikes[l] is (T, n_l) in the flat (c, x, y) order, shapes[l] its
    (channels, height, width)."""
    plt = require_matplotlib()
    maps = [(l, np.asarray(s).sum(axis=0).reshape(shape)) for l, (s, shape) in enumerate(zip(layer_spikes, shapes))
            if shape[1] > 1 or shape[2] > 1]
    cols = max(min(16, m.shape[0]) for _, m in maps)
    # constrained layout keeps the row labels, colour bars and title apart (tight_layout let a
    # long label run over the next maps)
    fig, axes = plt.subplots(len(maps), cols, figsize=(1.0 * cols + 2.2, 1.2 * len(maps) + 0.9), squeeze=False,
                             layout="constrained")
    for row, (l, counts) in enumerate(maps):
        image = None
        for c in range(cols):
            ax = axes[row][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < counts.shape[0]:
                image = ax.imshow(counts[c], cmap="magma", vmin=0, vmax=max(1, counts.max()))
        axes[row][0].set_ylabel(f"layer {l + 1}\n{counts.shape[0]}x{counts.shape[1]}x{counts.shape[2]}\n"
                                f"{int(counts.sum())} spikes", fontsize=7, rotation=0, ha="right", va="center")
        bar = fig.colorbar(image, ax=list(axes[row]), shrink=0.9, pad=0.01)
        bar.set_label("spikes", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)


def plot_augmented(images: np.ndarray, config: AugmentConfig, seed: int, path: str | Path, n: int = 8,
                   epochs: int = 4, title: str = "") -> Path:
    """A grid (PNG, PDF or SVG by path's suffix): each of the first n images (row) as loaded, then its rate image in epochs
    0..epochs-1 (columns), with a colour bar of the spike probability per step. Needs matplotlib."""
    plt = require_matplotlib()
    images = square_images(images)[:check_whole("n", n, 1)]
    side = int(round(images.shape[1] ** 0.5))
    epochs = check_whole("epochs", epochs, 1)
    index = np.arange(images.shape[0])
    columns = [images / (5.5 * 255.0)] + [augment(images, seed, e, index, config) for e in range(epochs)]
    fig, axes = plt.subplots(len(images), len(columns), figsize=(1.2 * len(columns) + 1.0, 1.2 * len(images) + 0.8),
                             squeeze=False, layout="constrained")
    for col, rates in enumerate(columns):
        axes[0, col].set_title("original" if col == 0 else f"epoch {col - 1}", fontsize=8)
        for row in range(len(images)):
            ax = axes[row, col]
            image = ax.imshow(rates[row].reshape(side, side), cmap="gray", vmin=0.0, vmax=1 / 5.5)
            ax.set_axis_off()
    bar = fig.colorbar(image, ax=axes, shrink=0.6)
    bar.set_label("spike probability per step", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    fig.suptitle(title or "augmented training digits", fontsize=8)
    return save_figure(fig, path)


def _network_name(cfg: Any, net: Any) -> str:
    """The preset's name when the run is that preset's network and data; otherwise the layers in
    the paper's notation (28x28-15C5-P2-300-10), with the preset it started from."""
    _, h, w = net.input_shape
    parts = [f"{h}x{w}" if (h, w) != (1, 1) else str(net.layers[0])]
    for layer in net.layer_specs:
        parts.append(f"{layer.channels}C{layer.kernel}" if isinstance(layer, Conv2d) else
                     f"P{layer.size}" if isinstance(layer, Pool2d) else str(layer.n))
    shape = "-".join(parts)
    if cfg.preset is None:
        return shape
    preset = PRESETS[cfg.preset]
    if all(getattr(cfg, key) == value for key, value in preset.items()):
        return f"{cfg.preset} {shape}"
    return f"{shape}, from preset {cfg.preset}"


def write_plots(trainer: Any, out_dir: str | Path, fmt: str = "png") -> list[Path]:
    """curves.<fmt> from the trainer's history, raster.<fmt> of test sample 0 and, for a network
    with spatial layers, feature_maps.<fmt> of its spike counts; augmented.<fmt> of a few
    training digits when the run augments them. Titles name the run (its directory)."""
    out_dir = Path(out_dir)
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(PLOT_FORMATS)}, got {fmt!r}")
    cfg = trainer.config
    run = f"{out_dir.name} ({_network_name(cfg, trainer.net)}, T {cfg.T}, {cfg.dataset})"
    paths = []
    if trainer.history:
        paths.append(plot_curves(trainer.history, out_dir / f"curves.{fmt}", run))
    idx = np.arange(1)
    spikes = trainer.test_source.spikes(idx)
    layers = trainer.net.forward(spikes)
    classes = class_names(cfg.dataset, cfg.layers[-1])
    label = int(trainer.test_source.labels[0])
    counts = np.asarray(layers[-1][0]).sum(axis=0)
    title = (f"{run}\ntest sample 0: label {classes[label]}, prediction "
             f"{classes[int(np.argmax(counts))]}")
    kinds = ["reservoir" if isinstance(layer, Reservoir) else None for layer in getattr(trainer.net, "layer_specs", [])]
    paths.append(plot_raster(spikes[0], [s[0] for s in layers], out_dir / f"raster.{fmt}", title,
                             classes, kinds or None))
    shapes = getattr(trainer.net, "shapes", None)
    if shapes is not None and any(h > 1 or w > 1 for _, h, w in shapes[1:]):
        paths.append(plot_feature_maps([s[0] for s in layers], shapes[1:],
                                       out_dir / f"feature_maps.{fmt}", title))
    augmentation = cfg.augmentation()
    if augmentation.enabled:
        paths.append(plot_augmented(trainer.train_set.images[:6], augmentation, cfg.seed,
                                    out_dir / f"augmented.{fmt}", n=6, title=f"{run}: augmented training digits"))
    return paths
