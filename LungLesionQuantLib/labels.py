"""The label scheme shared by every output: values, names, colours and terminology.

One definition, so that the NIfTI label map (0/1/2/3), the Slicer segments and the tables
can never disagree about what a number means.
"""
from __future__ import annotations

from dataclasses import dataclass

BACKGROUND = 0
LUNG_NORMAL = 1
GGO = 2
CONS = 3
# Chest radiographs: ground glass and consolidation are not told apart on a projection image,
# so one opacity label, numbered apart from the CT labels so that a map can never be misread.
LUNG_FIELD = 1
OPACITY = 4


@dataclass(frozen=True)
class SegmentSpec:
    """One output segment: its label value, name, display colour and coded terminology.

    Codes: SNOMED CT for lung and consolidation, DICOM CID 6104 (DCM 112120) for ground glass.
    """

    value: int
    name: str
    color: tuple[float, float, float]
    category: tuple[str, str, str]
    type: tuple[str, str, str]

    def terminology_entry(self) -> str:
        """Slicer's terminology string (as stored in a .seg.nrrd ``SegmentN_Tags`` field)."""
        cat = "^".join(self.category)
        typ = "^".join(self.type)
        return f"Segmentation category and type - 3D Slicer General Anatomy list~{cat}~{typ}~^^~Anatomic codes - DICOM master list~^^~^^"


_ANATOMY = ("SCT", "123037004", "Anatomical Structure")
_MORPH = ("SCT", "49755003", "Morphologically Altered Structure")

# Colours follow Bartoli et al. 2022, Fig. 3: normal lung purple, GGO green, consolidation yellow.
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(LUNG_NORMAL, "LungN", (0.50, 0.30, 0.75), _ANATOMY, ("SCT", "39607008", "Lung")),
    SegmentSpec(GGO, "GGO", (0.20, 0.80, 0.20), _MORPH, ("DCM", "112120", "Ground glass opacity")),
    SegmentSpec(CONS, "Cons", (1.00, 0.90, 0.10), _MORPH, ("SCT", "95436008", "Lung consolidation")),
)


# Radiographs: the lung field (without opacity) and opacity (DICOM CID 6104, DCM 112001 "Opacity").
RADIOGRAPH_SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(LUNG_FIELD, "Lung", (0.50, 0.30, 0.75), _ANATOMY, ("SCT", "39607008", "Lung")),
    SegmentSpec(OPACITY, "Opacity", (1.00, 0.55, 0.10), _MORPH, ("DCM", "112001", "Opacity")),
)


def terminology_type_code(entry: str) -> str | None:
    """The type's code value in a Slicer terminology string (``context~category~type~...``,
    each coded ``scheme^value^meaning``): only the type, never the anatomic region, which a
    user may set to Lung on any segment."""
    fields = entry.split("~")
    if len(fields) < 3:
        return None
    parts = fields[2].split("^")
    return parts[1] if len(parts) > 1 and parts[1] else None


def find_segment(spec: SegmentSpec, segments: list[tuple[object, str | None, str]]):
    """The key of ``spec``'s segment among (key, terminology type code, name) triples: the first
    whose type code is the spec's, else the first named like it (a segment the user added keeps
    Slicer's default terminology); None when there is none. Position is never used."""
    by_code = next((key for key, code, _name in segments if code == spec.type[1]), None)
    if by_code is not None:
        return by_code
    return next((key for key, _code, name in segments if name.strip().lower() == spec.name.lower()), None)
