"""Small PNG plots for asset metadata (matplotlib, headless)."""

from __future__ import annotations

import io

import numpy as np


def histogram_png(values: np.ndarray, title: str, xlabel: str, bins: int = 40) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    upper = max(int(np.max(values)) + 1, 2) if len(values) else 2
    ax.hist(values, bins=np.linspace(0, upper, min(bins, upper) + 1), color="#4c72b0")
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    ax.set_yscale("log")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
