"""Volumes and extents of a label map, as defined by Bartoli et al. 2022.

lung = LungN + GGO + Cons; lesion = GGO + Cons; extent = volume / lung volume × 100.
Each measure is given for the whole lung and for the right and left lung separately.
An extent of an empty lung is undefined and reported as NaN, never as 0.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .labels import CONS, GGO, LUNG_NORMAL

REGIONS = ("", "right_", "left_")


def measurement_columns() -> list[str]:
    """The measurement columns, in the order every table uses."""
    cols = []
    for side in REGIONS:
        cols += [f"{side}lung_volume_cm3", f"{side}LungN_volume_cm3", f"{side}GGO_volume_cm3",
                 f"{side}Cons_volume_cm3", f"{side}lesion_volume_cm3",
                 f"{side}GGO_extent_pct", f"{side}Cons_extent_pct", f"{side}lesion_extent_pct"]
    return cols


def _region_measures(labels: np.ndarray, voxel_cm3: float, side: str) -> dict[str, float]:
    counts = np.bincount(labels.ravel(), minlength=4)
    lung_n, ggo, cons = (float(counts[v]) * voxel_cm3 for v in (LUNG_NORMAL, GGO, CONS))
    lung = lung_n + ggo + cons

    def extent(volume: float) -> float:
        return 100.0 * volume / lung if lung > 0 else float("nan")

    return {f"{side}lung_volume_cm3": lung, f"{side}LungN_volume_cm3": lung_n, f"{side}GGO_volume_cm3": ggo,
            f"{side}Cons_volume_cm3": cons, f"{side}lesion_volume_cm3": ggo + cons,
            f"{side}GGO_extent_pct": extent(ggo), f"{side}Cons_extent_pct": extent(cons),
            f"{side}lesion_extent_pct": extent(ggo + cons)}


def midline_column(labels: np.ndarray) -> int:
    """The column (x index, radiological orientation) that separates right from left lung.

    The lung voxel count per column is lowest at the mediastinum; the split is the lowest
    column count within the middle 40 % of the lungs' left-right extent (first one on ties).
    """
    profile = (labels > 0).sum(axis=(0, 1))
    cols = np.flatnonzero(profile)
    if cols.size == 0:
        return labels.shape[2] // 2
    lo, hi = cols[0], cols[-1]
    a = int(lo + 0.3 * (hi - lo))
    b = max(a + 1, int(np.ceil(lo + 0.7 * (hi - lo))) + 1)
    return a + int(np.argmin(profile[a:b]))


def measure_labels(labels: np.ndarray, spacing_xyz: tuple[float, float, float]) -> dict[str, float]:
    """Measures of a (Z, Y, X) label map in radiological orientation (x index → patient left)."""
    voxel_cm3 = float(np.prod(spacing_xyz)) / 1000.0
    split = midline_column(labels)
    out = _region_measures(labels, voxel_cm3, "")
    out.update(_region_measures(labels[:, :, :split], voxel_cm3, "right_"))
    out.update(_region_measures(labels[:, :, split:], voxel_cm3, "left_"))
    return out


def measure_image(label_image: sitk.Image) -> dict[str, float]:
    """Measures of a label image in any orientation (reoriented to LPS first)."""
    lps = sitk.DICOMOrient(label_image, "LPS")
    return measure_labels(sitk.GetArrayViewFromImage(lps), lps.GetSpacing())
