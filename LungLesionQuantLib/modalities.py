"""What differs between a chest CT and a chest radiograph once segmented: the segments, the
measures and their plausibility checks, and how a result is summed up in one line.

One record per modality, so that the per-case writer, the cohort table, the CLI and the Slicer
module handle both the same way and a radiograph can never be measured as a CT.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import SimpleITK as sitk

from .labels import RADIOGRAPH_SEGMENTS, SEGMENTS, SegmentSpec
from .measurement.plausibility import lung_warnings
from .measurement.quality import QUALITY_COLUMN, with_quality
from .measurement.quantify import measure_image, measurement_columns
from .radiograph.measure import measure_radiograph, radiograph_columns, radiograph_warnings


@dataclass(frozen=True)
class Modality:
    name: str
    segments: tuple[SegmentSpec, ...]
    measure: Callable[[sitk.Image], dict[str, float]]
    columns: Callable[[], list[str]]
    warnings: Callable[[sitk.Image], list[str]]
    headline: Callable[[dict], str]
    # The imaging score a risk model takes from this modality's measurements.
    extent_column: str

    def assess(self, label_image: sitk.Image, flags: list[str] = ()) -> tuple[dict[str, float | str], list[str]]:
        """The measurements of a label image with their ``quality`` column, and every warning
        (``flags`` raised before, e.g. by the segmenter's rules, then this modality's checks):
        the one path from labels to a table row, for the CLI, cohorts and Slicer alike."""
        warnings = list(dict.fromkeys([*flags, *self.warnings(label_image)]))
        return with_quality(self.measure(label_image), warnings), warnings

    def table_columns(self) -> list[str]:
        """The columns of this modality's rows in ``measurements.csv`` after ``case``."""
        return [*self.columns(), QUALITY_COLUMN]


def _ct_headline(row: dict) -> str:
    return (f"lung {row['lung_volume_cm3']:.0f} cm³, lesion extent {row['lesion_extent_pct']:.1f} % "
            f"(GGO {row['GGO_extent_pct']:.1f} %, Cons {row['Cons_extent_pct']:.1f} %)")


def _cxr_headline(row: dict) -> str:
    area = row["lung_area_mm2"]
    lung = f"lung {area / 100:.0f} cm²" if area == area else f"lung {row['lung_area_px']:.0f} px"
    return (f"{lung}, opacity {row['opacity_pct']:.1f} % of lung "
            f"(right {row['right_opacity_pct']:.1f} %, left {row['left_opacity_pct']:.1f} %)")


CT = Modality("ct", SEGMENTS, measure_image, measurement_columns, lung_warnings, _ct_headline, "lesion_extent_pct")
CXR = Modality("cxr", RADIOGRAPH_SEGMENTS, measure_radiograph, radiograph_columns, radiograph_warnings, _cxr_headline,
               "opacity_pct")
MODALITIES = {m.name: m for m in (CT, CXR)}


def modality_of(segmenter: object) -> Modality:
    """The modality a segmenter (the CT :class:`~.cascade.Cascade` or a radiograph model) serves."""
    return MODALITIES[getattr(segmenter, "modality", "ct")]
