"""Does what was segmented look like a pair of lungs? Warnings, never a silent number.

Checked on the final label image, so the same checks hold for the cascade's result and for a
segmentation a person edited in Slicer. Only volumes (3 or more slices) are checked: a single
slice has no lung volume.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .anatomy import MIN_REGION_FRACTION, MIN_VOLUME_SLICES, components, touches_edge

LUNG_LITRES = (1.0, 10.0)


def lung_warnings(label_image: sitk.Image) -> list[str]:
    """One line for each way the lung (labels > 0) of a label image does not look like lungs:
    none found; a volume outside :data:`LUNG_LITRES`; more than two large regions; lung on the
    edge of the image (the field of view cuts through the lungs)."""
    label_image = sitk.DICOMOrient(label_image, "LPS")  # axial slices, so the in-plane edge is known
    labels = sitk.GetArrayViewFromImage(label_image)
    if labels.ndim < 3 or labels.shape[0] < MIN_VOLUME_SLICES:
        return []
    lung = labels > 0
    if not lung.any():
        return ["no lung was found; expected a chest CT covering the lungs"]
    warnings = []
    litres = float(lung.sum()) * float(np.prod(label_image.GetSpacing())) / 1e6
    low, high = LUNG_LITRES
    if not low <= litres <= high:
        warnings.append(f"lung volume {litres:.2f} L is outside {low:g}-{high:g} L expected of adult lungs "
                        "(a scan covering part of the chest, a child, or a segmentation error): check the overlay")
    _labels, sizes = components(np.ascontiguousarray(lung))
    large = sum(1 for size in sizes if size >= MIN_REGION_FRACTION * sizes[0])
    if large > 2:
        warnings.append(f"the lung consists of {large} large separate regions; expected one or two: check the overlay")
    if touches_edge(lung, share=0.0):
        warnings.append("lung reaches the edge of the image: the field of view may cut through the lungs, "
                        "so the lung volume may be too small")
    return warnings
