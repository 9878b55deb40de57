"""Where lungs can be: inside the body, in the chest, without the central airways.

The lung network looks at one slice at a time and answers "air with lung texture". On a scan
it has never seen it also answers that for air that is not lung: between blankets, under the
scanner table, beside a whole-body patient, in the bowel. These rules, applied to its mask,
encode what every chest CT shares:

- **Body**: tissue is above -500 HU; opened in-plane by a 4 mm disk (blankets, the table's
  shells and cables are thinner and fall away), the largest 3D region is the patient; each
  slice's holes are filled, so the lungs lie inside it. Lung is kept only inside the body.
- **Chest**: lungs are the largest 3D region and the regions at least a tenth of its size
  whose top reaches the upper half of it (the other lung when the two are not joined). Bowel
  gas and the stomach lie below the diaphragm domes, so their top is low; they are dropped.
  A region that is mostly pure air (below -950 HU) is gas, not lung, wherever it lies: on a
  scan of the abdomen that holds only the lung bases the bowel can be the largest region.
- **Airways**: the trachea and main bronchi are not lung. Rule (the same as the training
  labels'): on each slice, a lung region under 7 cm² whose centre lies in the middle half of
  the lungs' left-right extent is airway, not lung.

- **Partial volume**: a lesion region lying almost wholly (:data:`SURFACE_LESION_SHARE`) on the
  lungs' upper or lower surface — lung voxels with no lung in the slice above or below — is the
  diaphragm's dome or the apex averaged into a thick slice, not disease: it is lung, not lesion.

A single slice cropped through the chest wall (the published 2D exports) has no body to
find: there the body rule is not applied.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

BODY_HU = -500.0
BODY_OPENING_MM = 4.0
BODY_PIXEL_MM = 2.0
AIRWAY_MAX_CM2 = 7.0
AIRWAY_CENTRAL_FRACTION = 0.25
MIN_REGION_FRACTION = 0.1
# A lesion region with at least this share of its voxels on the lungs' upper or lower surface is partial volume.
SURFACE_LESION_SHARE = 0.9
# Below this a voxel is gas: air is -1000 HU; lung parenchyma around -850 (see gas_regions).
GAS_HU = -950.0
# The smallest lung worth the name: a region of 1 cm³ in a volume, of 1 cm² on a single slice.
MIN_LUNG_MM3 = 1000.0
MIN_LUNG_MM2 = 100.0
# A volume has at least this many slices; fewer are separate 2D slices (often crops).
MIN_VOLUME_SLICES = 3


def components(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """3D face-connected regions, numbered by decreasing size (SimpleITK: fast on whole CTs)."""
    relabel = sitk.RelabelComponentImageFilter()
    relabel.SortByObjectSizeOn()
    labels = relabel.Execute(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8))))
    sizes = list(relabel.GetSizeOfObjectsInPixels())
    if len(sizes) < np.iinfo(np.uint16).max:
        labels = sitk.Cast(labels, sitk.sitkUInt16)  # half the memory to copy out
    return sitk.GetArrayFromImage(labels), sizes


_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def fill_holes_in_plane(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of each axial slice: background regions (connected within the slice by
    faces) that do not reach the slice's border. One labelling for all slices, for speed."""
    if not mask.any():
        return mask
    background, count = ndimage.label(~mask, _IN_PLANE)
    outside = np.zeros(count + 1, dtype=bool)
    for edge in (background[:, 0], background[:, -1], background[:, :, 0], background[:, :, -1]):
        outside[edge.ravel()] = True
    outside[0] = True  # label 0 is the mask itself
    return mask | ~outside[background]


def body_mask(hu: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """The patient in (Z, Y, X) HU slices: tissue above :data:`BODY_HU`, opened in-plane by a
    :data:`BODY_OPENING_MM` disk, its largest 3D region, holes filled slice by slice.

    Found on pixels of about :data:`BODY_PIXEL_MM` (every n-th row and column; a body needs no
    finer grid, and this is 10x faster on a 512-matrix CT), then repeated back to full size.
    """
    step = [max(1, int(round(BODY_PIXEL_MM / s))) for s in spacing_yx]
    tissue = np.asarray(hu)[:, ::step[0], ::step[1]] > BODY_HU
    radius = [max(1, int(round(BODY_OPENING_MM / (s * k)))) for s, k in zip(spacing_yx[::-1], step[::-1])] + [0]
    opened = sitk.BinaryMorphologicalOpening(sitk.GetImageFromArray(tissue.view(np.uint8)), radius, sitk.sitkBall)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(opened), sortByObjectSize=True) == 1
    body = fill_holes_in_plane(sitk.GetArrayFromImage(largest).view(bool))
    full = np.repeat(np.repeat(body, step[0], axis=1), step[1], axis=2)
    return full[:, :hu.shape[1], :hu.shape[2]]


def touches_edge(mask: np.ndarray, share: float = 0.05) -> bool:
    """Whether ``mask`` covers more than ``share`` of the in-plane image edge of its slices
    (a body cropped by the field of view, as in published 2D slice exports)."""
    edge = np.concatenate([mask[:, 0].ravel(), mask[:, -1].ravel(), mask[:, :, 0].ravel(), mask[:, :, -1].ravel()])
    return bool(edge.mean() > share)


def in_chest(lung: np.ndarray, min_voxels: int = 0, hu: np.ndarray | None = None) -> np.ndarray:
    """The lungs among the 3D regions of a (Z, Y, X) mask, Z increasing to the head: the
    largest region, and those at least :data:`MIN_REGION_FRACTION` of it whose top reaches
    the upper half of it (slices ordered feet to head, as :func:`imageio.to_lps` gives them);
    nothing where the largest is smaller than ``min_voxels`` (specks are no lung).

    Given the slices' ``hu``, regions of gas (:func:`gas_regions`) are no candidates: on a scan
    that holds only the lung bases, a colon or stomach full of gas can outsize the lungs."""
    if not lung.any():
        return lung
    labels, sizes = components(lung)
    candidates = np.arange(1, len(sizes) + 1)
    if hu is not None:
        candidates = candidates[~gas_regions(labels, sizes, hu)]
    if candidates.size == 0 or sizes[candidates[0] - 1] < min_voxels:
        return np.zeros_like(lung)
    boxes = ndimage.find_objects(labels)  # one pass: each region's slice range
    largest = candidates[0]
    middle = (boxes[largest - 1][0].start + boxes[largest - 1][0].stop - 1) / 2.0
    keep = [largest] + [i for i in candidates[1:]
                        if sizes[i - 1] >= MIN_REGION_FRACTION * sizes[largest - 1] and boxes[i - 1][0].stop - 1 >= middle]
    return np.isin(labels, keep)


def gas_regions(labels: np.ndarray, sizes: list[int], hu: np.ndarray) -> np.ndarray:
    """Per region 1, 2, ... of ``labels`` (``sizes``: their voxel counts): whether it is gas rather than lung — more than half of
    its voxels below :data:`GAS_HU`. Lung parenchyma, vessels and septa included, has its
    median near −850 HU (−900 in severe emphysema, higher with disease); gas in the stomach,
    bowel, free air or subcutaneous emphysema is air, −1000 HU plus noise, whose median noise
    does not move."""
    air = np.bincount(labels[hu < GAS_HU], minlength=len(sizes) + 1)[1:]
    return air > 0.5 * np.asarray(sizes)


def regions_touching(mask: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The 3D regions of ``mask`` that touch ``other`` (face neighbours, in 3D). Contact is
    looked for only around ``other`` first: usually there is none, and labelling all of
    ``mask`` (the air around a patient) is the slow part."""
    if not mask.any() or not other.any():
        return np.zeros_like(mask)
    zs, ys, xs = (np.flatnonzero(other.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    box = tuple(slice(max(lo[0] - 1, 0), hi[-1] + 2) for lo, hi in ((zs, zs), (ys, ys), (xs, xs)))
    near = np.zeros_like(mask)
    near[box] = ndimage.binary_dilation(other[box]) & mask[box]
    if not near.any():
        return np.zeros_like(mask)
    labels, _sizes = components(mask)
    ids = np.unique(labels[near])
    return np.isin(labels, ids[ids > 0])


def smallest_lung_voxels(slices: int, spacing_zyx: tuple[float, float, float]) -> int:
    """:data:`MIN_LUNG_MM3` in voxels for a volume, :data:`MIN_LUNG_MM2` in pixels for single slices."""
    if slices >= MIN_VOLUME_SLICES:
        return int(np.ceil(MIN_LUNG_MM3 / float(np.prod(spacing_zyx))))
    return int(np.ceil(MIN_LUNG_MM2 / float(spacing_zyx[1] * spacing_zyx[2])))


def drop_airways(lung: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Remove the trachea and main bronchi from (Z, Y, X) lung slices: per slice, regions under
    :data:`AIRWAY_MAX_CM2` centred in the middle half of the slice's lungs (left-right)."""
    if not lung.any():
        return lung.copy()
    max_pixels = AIRWAY_MAX_CM2 * 100.0 / (pixel_mm * pixel_mm)
    # Every slice's regions labelled at once (connected within the slice only), measured by counting.
    labels, n = ndimage.label(lung, _IN_PLANE)
    pixels = np.flatnonzero(labels)
    ids = labels.ravel()[pixels]
    areas = np.bincount(ids, minlength=n + 1)[1:]
    centres = np.bincount(ids, weights=pixels % lung.shape[2], minlength=n + 1)[1:] / np.maximum(areas, 1)
    slice_of = np.array([box[0].start for box in ndimage.find_objects(labels)])
    occupied = lung.any(axis=1)  # (Z, X): the columns each slice's lungs cover
    first = np.argmax(occupied, axis=1)
    last = lung.shape[2] - 1 - np.argmax(occupied[:, ::-1], axis=1)
    mid, half = (first + last) / 2.0, np.maximum(1.0, (last - first) / 2.0)
    airway = (areas < max_pixels) & (np.abs(centres - mid[slice_of]) < AIRWAY_CENTRAL_FRACTION * half[slice_of])
    return lung & ~np.concatenate([[False], airway])[labels]


def drop_airways_2d(slice_mask: np.ndarray, pixel_mm: float) -> np.ndarray:
    """:func:`drop_airways` for one 2D slice (the training labels' rule)."""
    return drop_airways(slice_mask[None], pixel_mm)[0]


def surface_lesions(lesion: np.ndarray, lung: np.ndarray, lung_beyond: tuple[bool, bool] = (True, True)) -> np.ndarray:
    """The 3D regions of ``lesion`` (Z, Y, X) of which at least :data:`SURFACE_LESION_SHARE`
    lies on the upper or lower surface of ``lung``: voxels whose slice above or below holds no
    lung there. ``lung_beyond`` says whether lung goes on below the first and above the last
    slice (so at the ends of a scan that cuts the lungs; not below and above a box cut around
    them). On 5-mm slices the dome of the diaphragm shades a whole slice of lung into what looks
    like ground glass or consolidation; true lesions have depth."""
    if not lesion.any():
        return np.zeros_like(lesion)
    outside = ~lung
    surface = np.zeros_like(lung)
    surface[1:] |= outside[:-1]
    surface[:-1] |= outside[1:]
    surface[0] |= not lung_beyond[0]
    surface[-1] |= not lung_beyond[1]
    labels, sizes = components(lesion)
    on_surface = np.bincount(labels[surface & lesion], minlength=len(sizes) + 1)[1:]
    flat = np.flatnonzero(on_surface >= SURFACE_LESION_SHARE * np.asarray(sizes)) + 1
    return np.isin(labels, flat) if flat.size else np.zeros_like(lesion)
