"""DICOM SEG export (highdicom) of a label map that lies on a DICOM CT series' voxel grid."""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from highdicom.sr.coding import CodedConcept
from pydicom.sr.codedict import codes

from . import __version__
from .atomic import atomic_path
from .errors import InputError
from .labels import SEGMENTS


def _code(triplet: tuple[str, str, str]) -> CodedConcept:
    scheme, value, meaning = triplet
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def segment_descriptions() -> list[hd.seg.SegmentDescription]:
    algorithm = hd.AlgorithmIdentificationSequence(name="LungLesionQuant", family=codes.cid7162.ArtificialIntelligence,
                                                   version=__version__)
    return [hd.seg.SegmentDescription(segment_number=spec.value, segment_label=spec.name,
                                      segmented_property_category=_code(spec.category),
                                      segmented_property_type=_code(spec.type),
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                      algorithm_identification=algorithm,
                                      display_color=hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in spec.color)))
            for spec in SEGMENTS]


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
