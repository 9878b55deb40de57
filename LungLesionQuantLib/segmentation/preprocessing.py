"""Slice preprocessing shared by training and inference, so the two can never drift.

Every network sees a lung-window slice (level -600 HU, width 1500 HU) scaled to [0, 1],
padded to a square and resized.

8-bit slice exports (the published 2D slices, and PNG/JPG input) carry no HU. The data notes
suggest inverting that lung window, but the slices' own histograms say otherwise: aerated
lung and soft tissue sit at grey 45 and 211 (modes over the 50 GGO/Cons slices, by
:func:`histogram_landmarks`), where on real HU CTs under the lung window they
sit at grey 68 and 222 (RICORD and Lung-PET-CT-Dx). Matching the two gives the window below,
HU = g / 255 * 1392 - 1196; with the data notes' window, ground glass of those slices would
read about -810 HU and consolidation -375 HU, and a network trained on them would call the
ground glass of real CTs (about -500 HU) consolidation.

Exports from other sources use other windows (the Coronacases slices put the same landmarks
at grey 14 and 95), so a slice's window is estimated from its own landmarks
(:func:`estimate_grey_window`): the aerated-lung and soft-tissue modes are mapped to where they
lie on real CTs, -950 and -44 HU. The fixed window above is used only where no landmarks are found.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

WINDOW_LOW_HU = -1350.0
WINDOW_HIGH_HU = 150.0
GREY8_WINDOW_HU = (-1196.0, 196.0)


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


def grey8_to_hu(grey: np.ndarray) -> np.ndarray:
    """HU of an 8-bit slice export under :data:`GREY8_WINDOW_HU` (an estimate: see the module docstring)."""
    return DOCUMENTED_WINDOW.to_hu(grey)


# Where the histogram landmarks of aerated lung and soft tissue lie on real HU CTs under the
# lung window (grey 79 / 210 on RICORD, 57 / 234 on Lung-PET-CT-Dx, by :func:`histogram_landmarks`
# on lung-box crops); their means, as unit values of the lung window (-950 and -44 HU).
CT_LANDMARKS_UNIT = (68 / 255, 222 / 255)
# Where the documented window puts the soft-tissue landmark, and how far a slice's own may lie
# from it and still be read under the documented window (the 50 GGO/Cons slices: 187-251).
DOCUMENTED_SOFT_GREY = 211
SOFT_GREY_TOLERANCE = 40
# A landmark counts when at least this share of the slice's pixels lies within LANDMARK_HALF_WIDTH
# grey levels of it, the soft-tissue one is not saturated, and the two are MIN_LANDMARK_GAP apart.
LANDMARK_MIN_SHARE = 0.08
LANDMARK_HALF_WIDTH = 8
SATURATED_GREY = 245
MIN_LANDMARK_GAP = 40
# An estimate this far from the documented window is warned about (relative width; level in HU).
WINDOW_WARN_WIDTH = 0.25
WINDOW_WARN_LEVEL_HU = 150.0


def histogram_landmarks(grey: np.ndarray) -> tuple[int, int]:
    """The aerated-lung and soft-tissue modes of 8-bit slices: the histogram peaks below and
    above the Otsu threshold (the lowest grey levels and saturation excluded)."""
    grey = np.asarray(grey).astype(np.uint8)
    hist = np.convolve(np.bincount(grey.ravel(), minlength=256).astype(float), np.ones(5) / 5, mode="same")
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(sitk.GetImageFromArray(grey.reshape(1, -1)))
    threshold = int(otsu.GetThreshold())
    return 3 + int(np.argmax(hist[3:threshold])), threshold + int(np.argmax(hist[threshold:252]))


@dataclass(frozen=True)
class GreyWindow:
    """The HU window an 8-bit slice was exported under: grey 0 is ``low_hu``, 255 ``high_hu``."""

    low_hu: float
    high_hu: float
    source: str

    @property
    def width(self) -> float:
        return self.high_hu - self.low_hu

    @property
    def level(self) -> float:
        return (self.high_hu + self.low_hu) / 2.0

    @classmethod
    def from_width_level(cls, width: float, level: float, source: str = "given") -> "GreyWindow":
        return cls(level - width / 2.0, level + width / 2.0, source)

    def to_hu(self, grey: np.ndarray) -> np.ndarray:
        return np.asarray(grey, dtype=np.float32) / np.float32(255.0) * np.float32(self.width) + np.float32(self.low_hu)

    def describe(self) -> str:
        return f"window {self.width:.0f}/{self.level:.0f} HU (width/level), {self.source}"

    def far_from_documented(self) -> bool:
        return (abs(self.width - DOCUMENTED_WINDOW.width) > WINDOW_WARN_WIDTH * DOCUMENTED_WINDOW.width
                or abs(self.level - DOCUMENTED_WINDOW.level) > WINDOW_WARN_LEVEL_HU)


DOCUMENTED_WINDOW = GreyWindow(*GREY8_WINDOW_HU, "documented")


def estimate_grey_window(grey: np.ndarray) -> Optional[GreyWindow]:
    """The window of an 8-bit slice, from its own landmarks (aerated-lung and soft-tissue modes).

    The documented window where the slice's soft tissue lies within :data:`SOFT_GREY_TOLERANCE`
    of where that window puts it: one slice's landmarks are noisy (diseased lung has little
    aerated lung; measured on the 50 GGO/Cons slices, a per-slice estimate lost 0.011 Cons Dice),
    so the window measured over many slices is kept where the slice agrees with it. Elsewhere
    the window that maps both landmarks to :data:`CT_LANDMARKS_UNIT`; None where the slice
    contradicts the documented window but shows no reliable pair of landmarks.
    """
    grey = np.asarray(grey).astype(np.uint8)
    if grey.size == 0 or grey.min() == grey.max():
        return None
    lung, soft = histogram_landmarks(grey)
    if abs(soft - DOCUMENTED_SOFT_GREY) <= SOFT_GREY_TOLERANCE:
        return GreyWindow(*GREY8_WINDOW_HU, f"documented (the slice's soft tissue at grey {soft} agrees with it)")
    counts = np.bincount(grey.ravel(), minlength=256)

    def share(mode: int) -> float:
        return counts[max(0, mode - LANDMARK_HALF_WIDTH):mode + LANDMARK_HALF_WIDTH + 1].sum() / grey.size

    if soft - lung < MIN_LANDMARK_GAP or soft >= SATURATED_GREY or min(share(lung), share(soft)) < LANDMARK_MIN_SHARE:
        return None
    lung_hu, soft_hu = (float(unit_to_hu(np.float32(u))) for u in CT_LANDMARKS_UNIT)
    hu_per_grey = (soft_hu - lung_hu) / (soft - lung)
    low = lung_hu - lung * hu_per_grey
    return GreyWindow(low, low + 255 * hu_per_grey, f"estimated from the slice (aerated lung at grey {lung}, soft tissue at {soft})")


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
    zoom = fit.size / side
    return ndimage.zoom(square, (1, zoom, zoom), order=order, mode="nearest", grid_mode=True)


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
