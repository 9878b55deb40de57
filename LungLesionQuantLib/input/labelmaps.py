"""Reading any segmentation a user may hold as a 0/1/2/3 label image: label-map volumes
(NIfTI, NRRD, MHA) or Slicer ``.seg.nrrd`` files, whose segments are matched by terminology
code, else by name (never by position). Also: finding the cases of a folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicerio

from ..errors import InputError
from .imageio import SEGMENTATION_SUFFIX, VOLUME_SUFFIXES, case_name
from ..labels import SEGMENTS, find_segment



def _type_code(segment: dict) -> str | None:
    code = (segment.get("terminology") or {}).get("type") or []
    return code[1] if len(code) > 1 and code[1] else None


def read_seg_nrrd(path: Path) -> tuple[sitk.Image, list[str]]:
    """A ``.seg.nrrd`` as a label image (priority Cons > GGO > LungN where segments overlap)."""
    seg = slicerio.read_segmentation(str(path))
    voxels = seg["voxels"]
    if voxels.ndim == 3:
        voxels = voxels[..., None]
    labels = np.zeros(voxels.shape[:3], np.uint8)
    warnings = []
    for spec in SEGMENTS:
        index = find_segment(spec, [(i, _type_code(s), s.get("name", "")) for i, s in enumerate(seg["segments"])])
        match = None if index is None else seg["segments"][index]
        if match is None:
            warnings.append(f"{path.name}: no segment {spec.name}: counted as empty")
            continue
        labels[voxels[..., match.get("layer", 0)] == match["labelValue"]] = spec.value
    ijk_to_lps = np.asarray(seg["ijkToLPS"], dtype=float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(labels.transpose(2, 1, 0).copy())
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((ijk_to_lps[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(ijk_to_lps[:3, 3]))
    return image, warnings


def read_label_image(path: Path) -> tuple[sitk.Image, list[str]]:
    """Any supported segmentation file as a 0/1/2/3 label image, with warnings."""
    path = Path(path)
    if path.name.lower().endswith(SEGMENTATION_SUFFIX):
        return read_seg_nrrd(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise InputError(f"{path}: could not be read; expected a label map (0/1/2/3) or a .seg.nrrd") from None
    array = sitk.GetArrayViewFromImage(image)
    values = set(np.unique(array).tolist())
    if image.GetNumberOfComponentsPerPixel() != 1 or not values <= {0, 1, 2, 3}:
        found = sorted(values)[:8]
        raise InputError(f"{path}: found values {found}; expected a label map with 0 background, 1 LungN, 2 GGO, 3 Cons")
    return sitk.Cast(image, sitk.sitkUInt8), []


def case_files(folder: Path) -> dict[str, Path]:
    """Cases of a folder: ``<case>/labels.nii.gz`` (the layout ``segment`` writes) or, failing
    that, ``<case>/segmentation.seg.nrrd``; and bare label files ``<case>.nii.gz`` etc."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected a folder of case folders or label-map files")
    cases: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for name in ("labels.nii.gz", "segmentation.seg.nrrd"):
                if (entry / name).exists():
                    cases[entry.name] = entry / name
                    break
        else:
            if entry.name.lower().endswith((SEGMENTATION_SUFFIX,) + VOLUME_SUFFIXES):
                cases[case_name(entry)] = entry
    return cases
