"""DICOM SEG export (highdicom) of a label map that lies on a DICOM CT series' voxel grid."""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from highdicom.sr.coding import CodedConcept
from pydicom.sr.codedict import codes

from .. import __version__
from .atomic import atomic_path
from ..dependencies import NEEDS, runs_beside
from ..errors import InputError
from ..labels import SEGMENTS


def _code(triplet: tuple[str, str, str]) -> CodedConcept:
    scheme, value, meaning = triplet
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def cielab(rgb: tuple[float, float, float]) -> hd.color.CIELabColor:
    """An sRGB colour (0-1) as DICOM's CIELab display colour (D65 white, the sRGB standard's
    matrix). highdicom 0.22, the newest that runs with Slicer 5.10's pydicom 2.4, has no
    ``CIELabColor.from_rgb``; this gives the same values within rounding."""
    c = np.asarray([round(255 * v) / 255 for v in rgb], dtype=float)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    srgb_to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
    xyz = srgb_to_xyz @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return hd.color.CIELabColor(116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2]))


def segment_descriptions() -> list[hd.seg.SegmentDescription]:
    """LungN, GGO and Cons with their codes and display colours (set as the DICOM attribute:
    highdicom 0.22's SegmentDescription takes no colour argument)."""
    algorithm = hd.AlgorithmIdentificationSequence(name="LungLesionQuant", family=codes.cid7162.ArtificialIntelligence,
                                                   version=__version__)
    descriptions = []
    for spec in SEGMENTS:
        description = hd.seg.SegmentDescription(segment_number=spec.value, segment_label=spec.name,
                                                segmented_property_category=_code(spec.category),
                                                segmented_property_type=_code(spec.type),
                                                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                                algorithm_identification=algorithm)
        description.RecommendedDisplayCIELabValue = list(cielab(spec.color).value)
        descriptions.append(description)
    return descriptions


def dicom_seg_unavailable() -> str:
    """Why DICOM SEG cannot be written here ('' when it can): the one rule of
    :data:`..dependencies.NEEDS` (highdicom runs only beside pydicom 3; the highdicom that installs
    beside pydicom 2, 0.22, fails with numpy 2)."""
    if not runs_beside("highdicom", {"pydicom": pydicom.__version__}):
        need = ", ".join(f"{name} {major}" for name, major in NEEDS["highdicom"].items())
        return (f"DICOM SEG needs highdicom beside {need} (as in Slicer 5.12); found highdicom {hd.__version__} with "
                f"pydicom {pydicom.__version__}: segmentation.dcm was not written (the .seg.nrrd holds the same segments)")
    return ""


def write_dicom_seg(label_image: sitk.Image, dicom_files: list[str], path: Path) -> Path:
    """Write a binary DICOM SEG with segments 1 LungN, 2 GGO, 3 Cons referencing the CT series.

    Each CT file is matched to its slice of ``label_image`` by its image position.
    """
    sources = sorted((pydicom.dcmread(f) for f in dicom_files), key=lambda ds: float(ds.ImagePositionPatient[2]))
    labels = sitk.GetArrayFromImage(label_image)
    frames = np.zeros((len(sources),) + labels.shape[1:], dtype=np.uint8)
    for i, ds in enumerate(sources):
        index = label_image.TransformPhysicalPointToIndex(tuple(float(v) for v in ds.ImagePositionPatient))
        if not (0 <= index[2] < labels.shape[0]) or index[:2] != (0, 0) or (ds.Rows, ds.Columns) != labels.shape[1:]:
            raise InputError(f"{ds.filename}: this CT slice does not lie on the label map's grid; expected the series the label map was made from")
        frames[i] = labels[index[2]]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(), series_instance_uid=hd.UID(), series_number=901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="LungLesionQuant",
        manufacturer_model_name="LungLesionQuant", software_versions=__version__, device_serial_number="0",
        series_description="LungLesionQuant LungN/GGO/Cons", omit_empty_frames=True)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path
