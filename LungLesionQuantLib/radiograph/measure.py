"""Areas and opacity share of a radiograph's label map (Tang et al. 2020: opacity % of lung).

lung = Lung + Opacity pixels; opacity % = opacity area / lung area × 100, for both lungs, each
lung (patient right on the image's left, as radiographs are displayed), and the upper, middle
and lower third of each lung's height (the zones radiographic severity scores divide the lungs
into). Areas are in pixels always and in mm² where the image gives its pixel spacing (NaN
where it does not: a pixel of a resized PNG has no size). An empty lung's share is NaN, never 0.

A number is only as good as the lung fields it is a share of: :func:`radiograph_warnings` says
where they do not look like the two lung fields of an upright frontal film (one field, fields one
above the other, fields running off the image, a tiny or huge lung), and where the opacity fills
all of the lung (a white-out, or a film the network could not read) — never a silent number.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..labels import OPACITY
from ..runtime import QualityFlag
from ..measurement.quantify import midline_column

SIDES = ("", "right_", "left_")
ZONES = ("upper", "middle", "lower")
SPACING_KNOWN_KEY = "llq_spacing_known"
# Two lung fields lie side by side where their row ranges overlap by at least this share of the
# shorter field's height (on a film turned by a quarter they lie one above the other).
SIDE_BY_SIDE_OVERLAP = 0.5
# Lung fields share of the image on a frontal chest radiograph (outside: warned).
LUNG_SHARE = (0.08, 0.7)
# Share of the lung fields' outline on the image's border above which they run off the image
# (50 COVID-QU-Ex films: at most 0.06; a film cropped through the lungs: a whole side or more).
EDGE_OUTLINE = 0.15
# Opacity share of the lung (%) at which the whole lung is opaque: a white-out, or a film the
# network could not read (turned, a negative, not a chest radiograph), which it calls all opacity.
ALL_OPAQUE_PCT = 99.0


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


def side_by_side(lung: np.ndarray) -> bool:
    """Whether the lung mask (H, W) is two fields side by side, as on an upright frontal film."""
    regions, n = ndimage.label(lung)
    if n != 2:
        return False
    (rows_a, _), (rows_b, _) = ndimage.find_objects(regions)
    overlap = min(rows_a.stop, rows_b.stop) - max(rows_a.start, rows_b.start)
    return overlap >= SIDE_BY_SIDE_OVERLAP * min(rows_a.stop - rows_a.start, rows_b.stop - rows_b.start)


def edge_outline_share(lung: np.ndarray) -> float:
    """Share of the lung mask's (H, W) outline that lies on the image's border."""
    padded = np.pad(lung, 1)
    outline = padded & ~ndimage.binary_erosion(padded)  # the border counts as outside
    border = np.zeros_like(padded)
    border[1, :] = border[-2, :] = border[:, 1] = border[:, -2] = True
    return float(np.count_nonzero(outline & border)) / max(np.count_nonzero(outline), 1)


def radiograph_warnings(label_image: sitk.Image) -> list[QualityFlag]:
    """What makes a radiograph's numbers doubtful, so that they are never reported silently: no
    lung found; lung fields that are not two, lie one above the other, run off the image, or
    cover unusually little or much of it (the film may be turned, cropped, or not a chest
    radiograph); opacity filling the whole lung (a white-out, or a film the network could not read)."""
    labels = sitk.GetArrayViewFromImage(label_image)
    labels = np.asarray(labels[0] if labels.ndim == 3 else labels)
    lung = labels > 0
    share = float(np.count_nonzero(lung)) / lung.size
    if share == 0:
        return [QualityFlag("no_lung", "no lung found on the radiograph: opacity % is undefined", True)]
    warnings = []
    if not LUNG_SHARE[0] <= share <= LUNG_SHARE[1]:
        warnings.append(QualityFlag("lung_area", f"lung fields cover {100 * share:.1f} % of the image (a frontal chest radiograph: about 15-45 %): check the image"))
    fields = ndimage.label(lung)[1]
    if fields != 2:
        warnings.append(QualityFlag("lung_fields", f"{fields} lung field{'s' if fields > 1 else ''} found (a frontal chest radiograph: two): check the image and the overlay"))
    elif not side_by_side(lung):
        warnings.append(QualityFlag("fields_stacked", "the two lung fields lie one above the other (a frontal chest radiograph: side by side): the film may be turned; check the overlay"))
    edge = edge_outline_share(lung)
    if edge > EDGE_OUTLINE:
        warnings.append(QualityFlag("fields_cut_by_edge", f"the lung fields run off the image ({100 * edge:.0f} % of their outline on its edge): the film may be cropped or not a chest radiograph"))
    opacity_pct = 100.0 * np.count_nonzero(labels == OPACITY) / np.count_nonzero(lung)
    if opacity_pct >= ALL_OPAQUE_PCT:
        warnings.append(QualityFlag("white_out", f"opacity fills {opacity_pct:.1f} % of the lung: a white-out, or a film the model could not read "
                                    "(turned, a negative, not a chest radiograph); check the overlay before using the number"))
    return warnings
