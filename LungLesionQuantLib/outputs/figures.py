"""Figures drawn off-screen without touching matplotlib's global backend.

Choosing matplotlib's backend at import would switch it for the whole process, Slicer's
included; a ``Figure`` with its own Agg canvas draws to files and leaves pyplot alone.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .atomic import atomic_path


def new_figure(**kwargs) -> Figure:
    """A matplotlib Figure (``figsize`` etc.) with an Agg canvas, ready for ``savefig``."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG (100 dpi) through a verified, atomic write; laid out tightly first
    unless the caller has laid it out itself."""
    if tight:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path
