"""Slice preprocessing shared by training and inference, so the two can never drift.

Every network sees a lung-window slice (level -600 HU, width 1500 HU) scaled to [0, 1],
padded to a square and resized. How an 8-bit slice export becomes HU before this: :mod:`..input.grey_window`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..input.grey_window import CT_LANDMARKS_HU

WINDOW_LOW_HU = -1350.0
WINDOW_HIGH_HU = 150.0


def clip_to_window(hu: np.ndarray) -> np.ndarray:
    """HU clipped to the lung window (float32). Resizing commutes with the linear map to [0, 1],
    so inference clips the full slices and scales only the small network inputs."""
    return np.clip(np.asarray(hu, dtype=np.float32), WINDOW_LOW_HU, WINDOW_HIGH_HU)


def window_to_unit(clipped: np.ndarray) -> np.ndarray:
    """Windowed HU (see :func:`clip_to_window`) to [0, 1]."""
    return (clipped - np.float32(WINDOW_LOW_HU)) / np.float32(WINDOW_HIGH_HU - WINDOW_LOW_HU)


def unit_to_hu(unit: np.ndarray) -> np.ndarray:
    """Inverse of :func:`window_to_unit`: [0, 1] back to (windowed) HU."""
    return unit * np.float32(WINDOW_HIGH_HU - WINDOW_LOW_HU) + np.float32(WINDOW_LOW_HU)


def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """Map HU to [0, 1] under the lung window (float32)."""
    return window_to_unit(clip_to_window(hu))


# Where the histogram landmarks of aerated lung and soft tissue lie on real CTs, as unit values
# of the lung window (:data:`..input.grey_window.CT_LANDMARKS_HU`).
CT_LANDMARKS_UNIT = tuple(float(hu_to_unit(np.float32(h))) for h in CT_LANDMARKS_HU)


@dataclass(frozen=True)
class SquareFit:
    """Where a square network input came from: a box (rows r0:r1, cols c0:c1) of a slice.

    The box is padded symmetrically to a square of side ``side`` and resized to ``size``.
    """

    r0: int
    r1: int
    c0: int
    c1: int
    size: int

    @property
    def side(self) -> int:
        return max(self.r1 - self.r0, self.c1 - self.c0)

    @property
    def pads(self) -> tuple[int, int]:
        """Padding added above and to the left of the box."""
        return (self.side - (self.r1 - self.r0)) // 2, (self.side - (self.c1 - self.c0)) // 2


def fit_box(slices: np.ndarray, fit: SquareFit, order: int = 1, pad_value: float = 0.0) -> np.ndarray:
    """Cut ``fit``'s box out of (N, H, W) slices, pad to a square and resize to (N, size, size)."""
    box = slices[:, fit.r0:fit.r1, fit.c0:fit.c1]
    pr, pc = fit.pads
    side = fit.side
    if box.shape[1:] == (side, side):
        square = np.asarray(box, dtype=np.float32)
    else:
        square = np.full((box.shape[0], side, side), pad_value, dtype=np.float32)
        square[:, pr:pr + box.shape[1], pc:pc + box.shape[2]] = box
    if order != 1:  # nearest, for training labels: scipy's rounding, which the bundled models were trained with
        zoom = fit.size / side
        return ndimage.zoom(square, (1, zoom, zoom), order=order, mode="nearest", grid_mode=True)
    # Linear, on every slice at inference: SimpleITK (multithreaded) on scipy's grid_mode convention
    # (pixel edges map to pixel edges), equal to ndimage.zoom to float rounding and 1.5-2.5x faster.
    scale = side / fit.size
    image = sitk.GetImageFromArray(square)
    return sitk.GetArrayFromImage(sitk.Resample(image, (fit.size, fit.size, square.shape[0]), sitk.Transform(), sitk.sitkLinear,
                                                (0.5 * scale - 0.5, 0.5 * scale - 0.5, 0.0), (scale, scale, 1.0),
                                                image.GetDirection(), 0.0, sitk.sitkFloat32))


def unfit_mask(maps: np.ndarray, fit: SquareFit, order: int = 1) -> np.ndarray:
    """Inverse of :func:`fit_box` for (N, size, size) maps, thresholded: where the map resampled
    back onto ``fit``'s box exceeds 0.5, as a bool array (N, r1 - r0, c1 - c0).

    Resampled and thresholded by SimpleITK (multithreaded; the pixel-centre convention of
    ``fit_box``), and only over the box, since this runs on every slice at full resolution.
    """
    scale = fit.side / fit.size
    pr, pc = fit.pads
    small = sitk.GetImageFromArray(np.ascontiguousarray(maps, dtype=np.float32))
    small.SetSpacing((scale, scale, 1.0))
    small.SetOrigin((0.5 * scale - 0.5 - pc, 0.5 * scale - 0.5 - pr, 0.0))
    h, w = fit.r1 - fit.r0, fit.c1 - fit.c0
    interpolator = sitk.sitkLinear if order == 1 else sitk.sitkNearestNeighbor
    box = sitk.Resample(small, (int(w), int(h), int(maps.shape[0])), sitk.Transform(), interpolator, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                        small.GetDirection(), 0.0, sitk.sitkFloat32)
    above = sitk.BinaryThreshold(box, float(np.nextafter(0.5, 1.0)), float(np.finfo(np.float64).max), 1, 0)  # > 0.5
    return sitk.GetArrayFromImage(above).view(bool)


def whole_slice_fit(shape: tuple[int, int], size: int) -> SquareFit:
    """The fit that takes a whole slice of ``shape``."""
    return SquareFit(0, int(shape[0]), 0, int(shape[1]), size)


def bounding_fit(mask: np.ndarray, size: int, margin: float = 0.08) -> SquareFit | None:
    """The fit around the in-plane bounding box of a (N, H, W) mask, widened by ``margin``.

    One box for the whole volume keeps the lungs at the scale of the training crops, which
    were cut around both lungs of a CT. Returns None when the mask is empty.
    """
    plane = mask.any(axis=0)
    if not plane.any():
        return None
    rows = np.flatnonzero(plane.any(axis=1))
    cols = np.flatnonzero(plane.any(axis=0))
    h, w = plane.shape
    dr = int(round((rows[-1] - rows[0] + 1) * margin))
    dc = int(round((cols[-1] - cols[0] + 1) * margin))
    return SquareFit(max(0, rows[0] - dr), min(h, rows[-1] + 1 + dr), max(0, cols[0] - dc), min(w, cols[-1] + 1 + dc), size)
