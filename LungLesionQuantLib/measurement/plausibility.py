"""Does what was segmented look like a pair of lungs? Warnings, never a silent number.

Checked on the final label image, so the same checks hold for the cascade's result and for a
segmentation a person edited in Slicer. Volumes (3 or more slices) get every check; a single
slice has no lung volume, so it is checked only for how much of it is lung.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..input.imageio import to_lps
from ..segmentation.anatomy import MIN_REGION_FRACTION, MIN_VOLUME_SLICES, components, touches_edge
from ..runtime import QualityFlag
from .quantify import lung_box

LUNG_LITRES = (1.0, 10.0)
# On a single slice less lung than this share is worth a look (published CT crops: 10-61 %;
# chest radiographs read as CT slices: median 2 %).
MIN_SLICE_LUNG_SHARE = 0.05


def lung_warnings(label_image: sitk.Image) -> list[QualityFlag]:
    """One flag for each way the lung (labels > 0) of a label image does not look like lungs:
    none found; a stack too thin to be a volume; a volume outside :data:`LUNG_LITRES` (the lungs
    not fully in the scan, or more than lung: its extents are withheld); more than two large
    regions; lung on the edge of the image (the field of view cuts through the lungs)."""
    label_image = to_lps(label_image)  # axial slices, so the in-plane edge is known
    labels = sitk.GetArrayViewFromImage(label_image)
    lung = labels > 0
    if not lung.any():
        return [QualityFlag("no_lung", "no lung was found; expected a chest CT covering the lungs", True)]
    if labels.ndim == 3 and 1 < labels.shape[0] < MIN_VOLUME_SLICES:
        return [QualityFlag("too_few_slices", f"only {labels.shape[0]} slices: not a lung volume; volumes and extents describe these "
                            f"slices only (a chest CT has {MIN_VOLUME_SLICES} or more)")]
    if labels.ndim < 3 or labels.shape[0] < MIN_VOLUME_SLICES:
        share = float(lung.mean())
        if share < MIN_SLICE_LUNG_SHARE:
            return [QualityFlag("little_lung", f"lung covers only {100 * share:.1f} % of the slice: near the apex or the base that can be "
                                "right, but if this is not an axial lung-window CT slice (e.g. a radiograph) the numbers mean nothing: check the overlay")]
        return []
    warnings = []
    litres = float(lung.sum()) * float(np.prod(label_image.GetSpacing())) / 1e6
    low, high = LUNG_LITRES
    if not low <= litres <= high:
        code = "partial_lung" if litres < low else "implausible_lung_volume"
        warnings.append(QualityFlag(code, f"lung volume {litres:.2f} L is outside {low:g}-{high:g} L expected of adult lungs "
                                    "(a scan covering part of the chest, a child, or a segmentation error): extents left empty; check the overlay", True))
    _labels, sizes = components(lung_box(lung))
    large = sum(1 for size in sizes if size >= MIN_REGION_FRACTION * sizes[0])
    if large > 2:
        warnings.append(QualityFlag("lung_regions", f"the lung consists of {large} large separate regions; expected one or two: check the overlay"))
    if touches_edge(lung, share=0.0):
        warnings.append(QualityFlag("lung_cut_by_field_of_view", "lung reaches the edge of the image: the field of view may cut "
                                    "through the lungs, so the lung volume may be too small"))
    return warnings
