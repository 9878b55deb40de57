"""Figures drawn off-screen without touching matplotlib's global backend.

Choosing matplotlib's backend at import would switch it for the whole process, Slicer's
included; a ``Figure`` with its own Agg canvas draws to files and leaves pyplot alone.
"""
from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(**kwargs) -> Figure:
    """A matplotlib Figure (``figsize`` etc.) with an Agg canvas, ready for ``savefig``."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
