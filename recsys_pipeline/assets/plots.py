"""Small PNG plots for asset metadata (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


def _figure(size: tuple[float, float] = (6, 3.2)):  # noqa: ANN202 - matplotlib's (fig, ax)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, dpi=100)


def _png(fig: object) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def histogram_png(values: np.ndarray, title: str, xlabel: str, bins: int = 40) -> bytes:
    fig, ax = _figure()
    upper = max(int(np.max(values)) + 1, 2) if len(values) else 2
    ax.hist(values, bins=np.linspace(0, upper, min(bins, upper) + 1), color="#4c72b0")
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    ax.set_yscale("log")
    return _png(fig)


def scatter_png(points: np.ndarray, groups: Sequence[str], title: str) -> bytes:
    """2-D points coloured by group."""
    fig, ax = _figure((5, 4))
    labels = np.asarray(groups)
    for group in sorted(set(labels.tolist())):
        chosen = labels == group
        ax.scatter(
            points[chosen, 0], points[chosen, 1], s=3, alpha=0.5, label=f"{group} ({chosen.sum()})"
        )
    ax.set(title=title)
    ax.legend(markerscale=4, fontsize=8)
    return _png(fig)


def curves_png(series: dict[str, Sequence[float]], title: str, xlabel: str) -> bytes:
    """One panel per named series (e.g. training loss, validation NDCG@10) against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.2), dpi=100, squeeze=False)
    for ax, (name, values) in zip(axes[0], series.items(), strict=True):
        ax.plot(range(1, len(values) + 1), values, marker="o")
        ax.set(title=name, xlabel=xlabel)
    fig.suptitle(title)
    return _png(fig)
