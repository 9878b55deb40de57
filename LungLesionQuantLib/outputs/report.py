"""A one-page report: the overlay montage and the measurement table, as PDF or PNG (by suffix)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from .atomic import atomic_path
from .figures import new_figure
from ..labels import SEGMENTS
from .overlay import pick_slices, render_rgb
from ..segmentation.preprocessing import hu_to_unit

_ROWS = (("Lung", "lung_volume_cm3", None), ("Normal lung (LungN)", "LungN_volume_cm3", None),
         ("Ground glass (GGO)", "GGO_volume_cm3", "GGO_extent_pct"), ("Consolidation (Cons)", "Cons_volume_cm3", "Cons_extent_pct"),
         ("Lesion (GGO + Cons)", "lesion_volume_cm3", "lesion_extent_pct"))


def _fmt(value: float, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table_cells(row: dict) -> list[list[str]]:
    """The report table: one line per measure, whole lung / right / left, volume and extent."""
    cells = []
    for label, volume, extent in _ROWS:
        line = [label]
        for side in ("", "right_", "left_"):
            line.append(_fmt(row[side + volume], 0))
            line.append(_fmt(row[side + extent], 1) if extent else "")
        cells.append(line)
    return cells


def write_report(hu: np.ndarray, labels: np.ndarray, spacing_xyz: tuple[float, float, float], row: dict,
                 path: Path, title: str, warnings: list[str] | None = None, methods: str = "") -> Path:
    """One A4 page: title, 8 overlay slices, the table, any warnings, how to read it, and the
    methods paragraph (:func:`methods.methods_text`) when the result is the tool's own."""
    fig = new_figure(figsize=(8.27, 11.69))
    fig.suptitle(title, fontsize=12, y=0.98)
    slices = pick_slices(labels, 8)
    aspect = spacing_xyz[1] / spacing_xyz[0]
    for i, z in enumerate(slices):
        ax = fig.add_axes((0.03 + (i % 4) * 0.24, 0.70 - (i // 4) * 0.24, 0.22, 0.22))
        ax.imshow(render_rgb(hu_to_unit(hu[z]), labels[z]), aspect=aspect, interpolation="nearest")
        ax.set_title(f"slice {z + 1}/{hu.shape[0]}", fontsize=7)
        ax.axis("off")
    fig.legend(handles=[Patch(color=s.color, label=s.name) for s in SEGMENTS], loc="upper center",
               bbox_to_anchor=(0.5, 0.455), ncol=3, frameon=False, fontsize=9)
    ax = fig.add_axes((0.05, 0.20, 0.9, 0.22))
    ax.axis("off")
    columns = ["", "volume cm³", "extent %", "right cm³", "right %", "left cm³", "left %"]
    table = ax.table(cellText=table_cells(row), colLabels=columns, loc="upper center", cellLoc="right", colLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.4)
    text = ["Extent = volume / lung volume × 100; lung = LungN + GGO + Cons (Bartoli et al. 2022).",
            "Sides are the patient's. Automatic segmentation: check and correct before clinical use."]
    text += [f"Warning: {w}" for w in (warnings or [])]
    fig.text(0.05, 0.17, "\n".join(text), fontsize=8, va="top", wrap=True)
    if methods:
        fig.text(0.05, 0.09, "Methods. " + methods, fontsize=6, va="top", wrap=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "pdf", dpi=120)
    return path
