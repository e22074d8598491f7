"""Shared pieces of every equilens figure: a headless pyplot and atomic saving.

Figures are PNG files written without a display (matplotlib's Agg backend);
:func:`pyplot` imports matplotlib only when a figure is made, so importing a
module that can plot stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def diagonal(ax, *arrays) -> None:
    """Draw the ``y = x`` line over the range of ``arrays``."""
    values = np.concatenate([np.ravel(a) for a in arrays])
    low, high = values.min(), values.max()
    ax.plot([low, high], [low, high], color="black", lw=0.8)


def save_figure(fig, path: PathLike, dpi: int = 120) -> Path:
    """Lay out, save (creating the folder) and close ``fig``."""
    from .storage import atomic_write

    fig.tight_layout()
    path = Path(path)
    with atomic_write(path) as handle:
        fig.savefig(handle, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    pyplot().close(fig)
    return path
