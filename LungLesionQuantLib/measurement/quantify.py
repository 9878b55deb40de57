"""Volumes and extents of a label map, as defined by Bartoli et al. 2022.

lung = LungN + GGO + Cons; lesion = GGO + Cons; extent = volume / lung volume × 100.
Each measure is given for the whole lung and for the right and left lung separately, and, for
case outputs, for zones of each lung (:func:`zones_of`): upper / middle / lower thirds and
ventral / dorsal halves, each zone's extent relative to the zone's own lung volume.
An extent of an empty lung is undefined and reported as NaN, never as 0.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..input.imageio import to_lps
from ..labels import CONS, GGO, LUNG_NORMAL

REGIONS = ("", "right_", "left_")
ZONES = ("upper", "middle", "lower", "ventral", "dorsal")
ZONE_REGIONS = tuple(f"{side}{zone}_" for side in REGIONS[1:] for zone in ZONES)


def measurement_columns(zones: bool = True) -> list[str]:
    """The measurement columns, in the order every table uses (zone columns last: the table
    only ever grows)."""
    cols = []
    for side in REGIONS + (ZONE_REGIONS if zones else ()):
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


def zones_of(side_labels: np.ndarray) -> dict[str, tuple[slice, slice]]:
    """Zones of one lung as (slice rows, image rows) ranges of its (Z, Y, X) labels (Z to the
    head, Y to the back, as LPS arrays):

    - upper / middle / lower: thirds of the lung's height, by slice (slice z belongs to third
      floor(3 × (top − z) / h), h the number of slices from apex to base);
    - ventral / dorsal: the rows in front of and behind the middle of the lung's front-to-back
      extent over the whole lung (the middle row is ventral).

    Each family of zones is a partition of the lung, so zone volumes add up to the lung's exactly.
    """
    lung = side_labels > 0
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    if zs.size == 0:
        empty = (slice(0, 0), slice(None))
        return {zone: empty for zone in ZONES}
    top, height = int(zs[-1]), int(zs[-1] - zs[0] + 1)
    bounds = [top + 1 - (k * height + 2) // 3 for k in range(4)]  # z where floor(3 (top - z) / h) changes
    ys = np.flatnonzero(lung.any(axis=(0, 2)))
    middle = int(ys[0] + ys[-1]) // 2
    return {"upper": (slice(bounds[1], bounds[0]), slice(None)), "middle": (slice(bounds[2], bounds[1]), slice(None)),
            "lower": (slice(0, bounds[2]), slice(None)),
            "ventral": (slice(None), slice(0, middle + 1)), "dorsal": (slice(None), slice(middle + 1, None))}


def measure_labels(labels: np.ndarray, spacing_xyz: tuple[float, float, float], zones: bool = False) -> dict[str, float]:
    """Measures of a (Z, Y, X) label map in radiological orientation (x index → patient left),
    and with ``zones`` those of each lung's zones (:func:`zones_of`)."""
    voxel_cm3 = float(np.prod(spacing_xyz)) / 1000.0
    labels = lung_box(labels)  # every measure counts lung voxels only, and is relative to the lung
    split = midline_column(labels)
    out = _region_measures(labels, voxel_cm3, "")
    sides = {"right_": labels[:, :, :split], "left_": labels[:, :, split:]}
    for side, part in sides.items():
        out.update(_region_measures(part, voxel_cm3, side))
    if zones:
        for side, part in sides.items():
            for zone, (z_range, y_range) in zones_of(part).items():
                out.update(_region_measures(part[z_range, y_range], voxel_cm3, f"{side}{zone}_"))
    return out


def lung_box(labels: np.ndarray) -> np.ndarray:
    """The part of ``labels`` inside the lungs' bounding box, contiguous: a quarter of a 512²
    CT's voxels to count, each region once, instead of a strided copy of the whole volume."""
    occupied = [np.flatnonzero(labels.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    if any(index.size == 0 for index in occupied):
        return labels
    return np.ascontiguousarray(labels[tuple(slice(index[0], index[-1] + 1) for index in occupied)])


def measure_image(label_image: sitk.Image, zones: bool = True) -> dict[str, float]:
    """Measures of a label image in any orientation (reoriented to LPS first), zones included."""
    lps = to_lps(label_image)
    return measure_labels(sitk.GetArrayViewFromImage(lps), lps.GetSpacing(), zones)
