"""The overlay montage: axial lung-window slices with LungN, GGO and Cons drawn over them (or a
radiograph with its lung and opacity)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.patches import Patch

from .figures import new_figure, save_png
from ..labels import SEGMENTS, SegmentSpec

ALPHA = 0.45


def pick_slices(labels: np.ndarray, count: int) -> list[int]:
    """Evenly spaced slices through the lungs, each nudged to the nearby slice with most lesion."""
    rows = np.flatnonzero(labels.any(axis=(1, 2)))
    if rows.size == 0:
        return sorted(set(np.linspace(0, labels.shape[0] - 1, min(count, labels.shape[0])).astype(int).tolist()))
    picks = np.unique(np.quantile(rows, np.linspace(0.1, 0.9, count)).astype(int))
    lesion_area = (labels >= 2).sum(axis=(1, 2))
    half = max(1, (rows[-1] - rows[0]) // (4 * count))
    chosen = []
    for z in picks:
        lo, hi = max(rows[0], z - half), min(rows[-1], z + half)
        chosen.append(int(lo + np.argmax(lesion_area[lo:hi + 1])))
    return sorted(set(chosen))


def render_rgb(unit_slice: np.ndarray, label_slice: np.ndarray, segments: tuple[SegmentSpec, ...] = SEGMENTS) -> np.ndarray:
    """One slice as RGB floats: its display grey in [0, 1] with the segment colours blended in."""
    rgb = np.repeat(np.asarray(unit_slice, np.float32)[..., None], 3, axis=2)
    for spec in segments:
        mask = label_slice == spec.value
        rgb[mask] = (1 - ALPHA) * rgb[mask] + ALPHA * np.array(spec.color)
    return rgb


def write_overlay(image: np.ndarray, labels: np.ndarray, spacing_xyz: tuple[float, float, float],
                  path: Path, title: str, display: Callable[[np.ndarray], np.ndarray], count: int = 8,
                  segments: tuple[SegmentSpec, ...] = SEGMENTS) -> None:
    """Write a PNG montage of up to ``count`` axial slices (radiological orientation) of
    ``image``, each turned to display grey in [0, 1] by ``display`` (the lung window for CT): only
    the slices shown are converted, never a whole CT (a one-slice image, a radiograph, is drawn larger)."""
    slices = pick_slices(labels, count)
    cols = min(4, len(slices))
    nrows = int(np.ceil(len(slices) / cols))
    aspect = spacing_xyz[1] / spacing_xyz[0]
    side = 3.2 if image.shape[0] > 1 else 6.4
    width, height = side * cols, side * nrows * min(2.0, aspect * image.shape[1] / image.shape[2]) + 0.6
    fig = new_figure(figsize=(width, height))
    # Fixed margins in inches (title above, legend below, slice titles between rows): matplotlib's
    # tight layout measured every text and took as long as drawing the whole montage.
    fig.subplots_adjust(left=0.1 / width, right=1 - 0.1 / width, top=1 - 0.5 / height, bottom=0.35 / height,
                        wspace=0.05, hspace=0.3 * nrows / max(height - 0.85, 1.0))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, z in zip(axes.ravel(), slices):
        ax.imshow(render_rgb(display(image[z]), labels[z], segments), aspect=aspect, interpolation="nearest")
        if image.shape[0] > 1:
            ax.set_title(f"slice {z + 1}/{image.shape[0]}", fontsize=8)
    handles = [Patch(color=s.color, label=s.name) for s in segments]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=10)
    save_png(fig, path, tight=False)
