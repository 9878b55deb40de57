"""How an 8-bit slice export (a PNG/JPG with no HU) is read as HU: the window it was exported under.

The published 2D slices and a user's PNG/JPG carry no HU. The data notes
suggest inverting that lung window, but the slices' own histograms say otherwise: aerated
lung and soft tissue sit at grey 45 and 211 (modes over the 50 GGO/Cons slices, by
:func:`histogram_landmarks`), where on real HU CTs under the lung window they
sit at grey 68 and 222 of the lung window -1350…150 HU (RICORD and Lung-PET-CT-Dx). Matching the two gives the window below,
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

import numpy as np
import SimpleITK as sitk

GREY8_WINDOW_HU = (-1196.0, 196.0)


def grey8_to_hu(grey: np.ndarray) -> np.ndarray:
    """HU of an 8-bit slice export under :data:`GREY8_WINDOW_HU` (an estimate: see the module docstring)."""
    return DOCUMENTED_WINDOW.to_hu(grey)


# Where the histogram landmarks of aerated lung and soft tissue lie on real HU CTs: under the
# lung window -1350…150 HU at grey 79 / 210 on RICORD and 57 / 234 on Lung-PET-CT-Dx (by
# :func:`histogram_landmarks` on lung-box crops); their means, grey 68 and 222 (-950 and -44 HU).
CT_LANDMARKS_HU = (-1350.0 + 1500.0 * 68 / 255, -1350.0 + 1500.0 * 222 / 255)
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


def estimate_grey_window(grey: np.ndarray) -> GreyWindow | None:
    """The window of an 8-bit slice, from its own landmarks (aerated-lung and soft-tissue modes).

    The documented window where the slice's soft tissue lies within :data:`SOFT_GREY_TOLERANCE`
    of where that window puts it: one slice's landmarks are noisy (diseased lung has little
    aerated lung; measured on the 50 GGO/Cons slices, a per-slice estimate lost 0.011 Cons Dice),
    so the window measured over many slices is kept where the slice agrees with it. Elsewhere
    the window that maps both landmarks to :data:`CT_LANDMARKS_HU`; None where the slice
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
    lung_hu, soft_hu = CT_LANDMARKS_HU
    hu_per_grey = (soft_hu - lung_hu) / (soft - lung)
    low = lung_hu - lung * hu_per_grey
    return GreyWindow(low, low + 255 * hu_per_grey, f"estimated from the slice (aerated lung at grey {lung}, soft tissue at {soft})")
