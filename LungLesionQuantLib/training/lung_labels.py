"""Lung labels derived from HU, since no expert lung masks are available for training.

The rule (documented in the lung model card): inside the body (the largest connected region
above -500 HU, holes filled slice by slice), air below -400 HU forms candidate regions;
3D regions smaller than a tenth of the largest one (bowel gas, stray air) are dropped;
small 2D regions near the midline (trachea, main bronchi) are dropped; each slice is closed
with a 3 mm disk and its holes filled, so vessels and consolidation enclosed by lung count as lung.
Known lesions, where a dataset has them, are added afterwards by the caller.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..segmentation.anatomy import drop_airways_2d

BODY_HU = -500.0
AIR_HU = -400.0
OUTSIDE_HU = -1250.0


def _disk(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= r * r


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def body_mask(hu: np.ndarray) -> np.ndarray:
    """Per-slice body: largest region above -500 HU, holes filled (so the lungs are inside)."""
    body = np.zeros(hu.shape, dtype=bool)
    for z in range(hu.shape[0]):
        tissue = ndimage.binary_opening(hu[z] > BODY_HU, structure=_disk(2))
        body[z] = ndimage.binary_fill_holes(_largest_component(tissue))
    return body


def crop_body_mask(hu: np.ndarray) -> np.ndarray:
    """Per-slice body of published 2D crops, which cut through the chest wall so that lungs
    reach the crop's edge: everything but the near-black background (below -1250 HU, i.e.
    below the grey of aerated lung) connected to the edge."""
    body = np.zeros(hu.shape, dtype=bool)
    for z in range(hu.shape[0]):
        dark, _ = ndimage.label(ndimage.binary_opening(hu[z] < OUTSIDE_HU, structure=_disk(2)))
        edge = np.unique(np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]]))
        body[z] = ~np.isin(dark, edge[edge > 0])
    return body


def derive_lung_mask(hu: np.ndarray, spacing_zyx: tuple[float, float, float], body: np.ndarray | None = None) -> np.ndarray:
    """A lung mask for a (Z, Y, X) HU array in radiological orientation (``body``: default
    :func:`body_mask`)."""
    pixel_mm = float(spacing_zyx[1])
    body = body_mask(hu) if body is None else body
    air = (hu < AIR_HU) & ndimage.binary_erosion(body, structure=np.ones((1, 3, 3), bool), iterations=2)
    labels, n = ndimage.label(air)
    if n == 0:
        return air
    sizes = ndimage.sum_labels(air, labels, index=np.arange(1, n + 1))
    voxel_mm3 = float(np.prod(spacing_zyx))
    keep_ids = np.flatnonzero((sizes >= 0.1 * sizes.max()) & (sizes * voxel_mm3 >= 2000.0)) + 1
    lung = np.isin(labels, keep_ids)
    closing = _disk(round(3.0 / pixel_mm))
    for z in range(lung.shape[0]):
        lung[z] = drop_airways_2d(lung[z], pixel_mm)
        if lung[z].any():
            padded = np.pad(lung[z], closing.shape[0])
            closed = ndimage.binary_closing(padded, structure=closing)[closing.shape[0]:-closing.shape[0], closing.shape[0]:-closing.shape[0]]
            lung[z] = ndimage.binary_fill_holes(closed)
    return lung
