"""Plots with matplotlib (Agg backend, PNG files): the loss and accuracy curves of a ``kt.fit``
History, and the decision regions of a classifier of 2-d points (the spirals).

    python examples/plots.py [outdir] [epochs]

trains the spiral model with ``kt.fit`` and writes ``curves.png`` and ``regions.png`` into outdir
(default: the current directory). From Python: ``save_curves(history, path)``,
``save_regions(model, x, y, path)``, ``save_summary(history, model, x, y, path)`` (both in one
figure), or ``curves``/``regions`` to draw on axes of your own.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import ktorch as kt  # noqa: E402


def _logs(history):
    """A History's dict of lists (or a plain dict of lists, as a hand-written loop collects)."""
    return history.history if isinstance(history, kt.callbacks.History) else dict(history)


def curves(history, axes=None):
    """Loss (train and test) on the first axes, accuracy on the second, one point per epoch."""
    h = _logs(history)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, unit in zip(axes, ("loss", "accuracy"), ("", " (%)"), strict=False):
        for name, label in ((metric, "train"), (f"test_{metric}", "test")):
            values = h.get(name)
            if values and all(isinstance(v, float) for v in values):
                ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric + unit)
        ax.set_title(metric)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.grid(alpha=0.3)
    return axes


def regions(m, x, y, ax=None, steps=300, margin=0.1):
    """The class the model predicts over the plane around x (filled), with the points x coloured by y."""
    x = np.asarray(x, dtype=np.float32)
    lo, hi = x.min(0) - margin, x.max(0) + margin
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], steps), np.linspace(lo[1], hi[1], steps))
    grid = np.stack([g0.ravel(), g1.ravel()], 1).astype(np.float32)
    k = int(np.max(y)) + 1
    classes = kt.evaluate(m, grid).argmax(1).reshape(g0.shape)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(g0, g1, classes, levels=np.arange(k + 1) - 0.5, cmap="viridis", alpha=0.35)
    ax.scatter(x[:, 0], x[:, 1], c=y, s=4, cmap="viridis", vmin=0, vmax=k - 1)
    ax.set_title("decision regions")
    ax.set_aspect("equal")
    return ax


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
    plt.close(fig)
    return path


def save_curves(history, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    curves(history, axes)
    return _save(fig, path)


def save_regions(m, x, y, path):
    fig, ax = plt.subplots(figsize=(5, 5))
    regions(m, x, y, ax)
    return _save(fig, path)


def save_summary(history, m, x, y, path):
    """Loss, accuracy and decision regions side by side in one PNG."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    curves(history, axes[:2])
    regions(m, x, y, axes[2])
    return _save(fig, path)


def main(argv):
    from spirals import k, n, spirals

    outdir = argv[0] if argv else "."
    epochs = int(argv[1]) if len(argv) > 1 else 30
    kt.seed(7)
    x, y = spirals(n, k, 0)
    xt, yt = spirals(n // 2, k, 1)
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, k)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.2, 0.9))
    kt.train(m, batchsize=100, shuffle=True, metrics=["loss", "accuracy"])
    kt.test(m, batchsize=1000, metrics=["loss", "accuracy"])
    kt.train(m, x, y)
    kt.test(m, xt, yt)
    h = kt.fit(m, epochs, verbose=0)
    os.makedirs(outdir, exist_ok=True)
    for path in (save_curves(h, os.path.join(outdir, "curves.png")),
                 save_regions(m, x, y, os.path.join(outdir, "regions.png"))):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
