"""Areas and opacity share of a radiograph's label map (Tang et al. 2020: opacity % of lung).

lung = Lung + Opacity pixels; opacity % = opacity area / lung area × 100, for both lungs, each
lung (patient right on the image's left, as radiographs are displayed), and the upper, middle
and lower third of each lung's height (the zones radiographic severity scores divide the lungs
into). Areas are in pixels always and in mm² where the image gives its pixel spacing (NaN
where it does not: a pixel of a resized PNG has no size). An empty lung's share is NaN, never 0.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..labels import OPACITY
from ..measurement.quantify import midline_column

SIDES = ("", "right_", "left_")
ZONES = ("upper", "middle", "lower")
SPACING_KNOWN_KEY = "llq_spacing_known"


def radiograph_columns() -> list[str]:
    """The measurement columns of a radiograph, in table order."""
    regions = list(SIDES) + [f"{side}{zone}_" for side in SIDES[1:] for zone in ZONES]
    return [f"{r}{m}" for r in regions for m in ("lung_area_px", "opacity_area_px", "lung_area_mm2", "opacity_area_mm2", "opacity_pct")]


def spacing_known(image: sitk.Image) -> bool:
    """Whether ``image``'s pixel spacing is real: as the reader recorded it, else any spacing but
    the 1 × 1 that images without one are given (no radiograph detector has 1 mm pixels)."""
    if image.HasMetaDataKey(SPACING_KNOWN_KEY):
        return image.GetMetaData(SPACING_KNOWN_KEY) == "1"
    return tuple(image.GetSpacing()[:2]) != (1.0, 1.0)


def _measures(labels: np.ndarray, pixel_mm2: float, prefix: str) -> dict[str, float]:
    lung = float(np.count_nonzero(labels))
    opacity = float(np.count_nonzero(labels == OPACITY))
    return {f"{prefix}lung_area_px": lung, f"{prefix}opacity_area_px": opacity,
            f"{prefix}lung_area_mm2": lung * pixel_mm2, f"{prefix}opacity_area_mm2": opacity * pixel_mm2,
            f"{prefix}opacity_pct": 100.0 * opacity / lung if lung else float("nan")}


def _thirds(side: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.flatnonzero((side > 0).any(axis=1))
    out = {}
    for k, zone in enumerate(ZONES):
        part = np.zeros_like(side)
        if rows.size:
            top, height = rows[0], rows[-1] - rows[0] + 1
            a, b = top + (k * height) // 3, top + ((k + 1) * height) // 3
            part[a:b] = side[a:b]
        out[zone] = part
    return out


def measure_radiograph_labels(labels: np.ndarray, spacing_xy: tuple[float, float] | None) -> dict[str, float]:
    """Measures of a (Y, X) label map displayed as radiographs are (patient right on the left)."""
    pixel_mm2 = float(spacing_xy[0] * spacing_xy[1]) if spacing_xy else float("nan")
    split = midline_column(labels[None])
    out = _measures(labels, pixel_mm2, "")
    sides = {"right_": labels[:, :split], "left_": labels[:, split:]}
    for side, part in sides.items():
        out.update(_measures(part, pixel_mm2, side))
    for side, part in sides.items():
        for zone, zone_labels in _thirds(part).items():
            out.update(_measures(zone_labels, pixel_mm2, f"{side}{zone}_"))
    return out


def measure_radiograph(label_image: sitk.Image) -> dict[str, float]:
    """Measures of a one-slice radiograph label image."""
    labels = sitk.GetArrayViewFromImage(label_image)
    labels = labels[0] if labels.ndim == 3 else labels
    spacing = tuple(label_image.GetSpacing()[:2]) if spacing_known(label_image) else None
    return measure_radiograph_labels(np.asarray(labels), spacing)


def radiograph_warnings(label_image: sitk.Image) -> list[str]:
    """What makes a radiograph's numbers doubtful: no lung found, a lung field unusually small
    or large for a chest radiograph (the image may be cropped, rotated, or not a chest radiograph)."""
    labels = sitk.GetArrayViewFromImage(label_image)
    share = float(np.count_nonzero(labels)) / labels.size
    if share == 0:
        return ["no lung found on the radiograph: opacity % is undefined"]
    if share < 0.08:
        return [f"lung fields cover only {100 * share:.1f} % of the image (a frontal chest radiograph: about 15-45 %): check the image"]
    if share > 0.7:
        return [f"lung fields cover {100 * share:.0f} % of the image (a frontal chest radiograph: about 15-45 %): check the image"]
    return []
