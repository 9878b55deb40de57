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
from .input_checks import check_file
from ..labels import SEGMENTS, find_segment

LABEL_MAP = "a label map with 0 background, 1 LungN, 2 GGO, 3 Cons"


def _type_code(segment: dict) -> str | None:
    code = (segment.get("terminology") or {}).get("type") or []
    return code[1] if len(code) > 1 and code[1] else None


def read_seg_nrrd(path: Path) -> tuple[sitk.Image, list[str]]:
    """A ``.seg.nrrd`` as a label image (priority Cons > GGO > LungN where segments overlap); a
    missing segment is counted as empty with a warning, a file without any of them is refused."""
    try:
        seg = slicerio.read_segmentation(str(path))
    except Exception as exc:  # noqa: BLE001 — slicerio and pynrrd raise many kinds on a damaged file; each is the file's fault
        raise InputError(f"{path}: could not be read as a segmentation ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:150]}); "
                         "expected a .seg.nrrd saved by Slicer or 'lunglesionquant segment'") from None
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
    if len(warnings) == len(SEGMENTS):  # not one of them: every volume and extent would read 0, a wrong number
        raise InputError(f"{path}: holds none of the segments {[spec.name for spec in SEGMENTS]} (found segments {[s.get('name') for s in seg['segments']][:8]}); "
                         "expected a segmentation of the lungs and lesions, its segments named or coded as 'segment' writes them")
    ijk_to_lps = np.asarray(seg["ijkToLPS"], dtype=float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(labels.transpose(2, 1, 0).copy())
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((ijk_to_lps[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(ijk_to_lps[:3, 3]))
    return image, warnings


def read_label_image(path: Path) -> tuple[sitk.Image, list[str]]:
    """Any supported segmentation file as a 0/1/2/3 label image, with warnings; a damaged or
    cut-short file (which ITK would fill with zeros, :func:`.input_checks.check_file`), NaN voxels
    or values outside 0-3 are refused in one line naming them."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:  # a dangling link, a file removed meanwhile, no permission
        raise InputError(f"{path}: could not be read ({exc.strerror}); expected {LABEL_MAP}, or a .seg.nrrd") from None
    if size == 0:
        raise InputError(f"{path}: an empty file (0 bytes); expected {LABEL_MAP}, or a .seg.nrrd")
    check_file(path, LABEL_MAP)
    if path.name.lower().endswith(SEGMENTATION_SUFFIX):
        return read_seg_nrrd(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        why = next((line.strip() for line in reversed(str(exc).splitlines()) if line.strip()), "")[:150]
        raise InputError(f"{path}: could not be read ({why}); expected a label map (0/1/2/3) or a .seg.nrrd") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector image); expected {LABEL_MAP}")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError(f"{path}: found {int((~np.isfinite(array)).sum())} voxels that are NaN or infinite; expected {LABEL_MAP}")
    values = np.unique(array)
    if not np.isin(values, (0, 1, 2, 3)).all():
        raise InputError(f"{path}: found values {values[~np.isin(values, (0, 1, 2, 3))][:8].tolist()} besides 0-3; expected {LABEL_MAP}")
    return sitk.Cast(image, sitk.sitkUInt8), []


def _case_entries(folder: Path) -> list[tuple[str, Path]]:
    """(case, file) of every case folder and bare label file of a folder, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected a folder of case folders or label-map files")
    entries = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found = next((entry / name for name in ("labels.nii.gz", "segmentation.seg.nrrd") if (entry / name).exists()), None)
            if found is not None:
                entries.append((entry.name, found))
        elif entry.name.lower().endswith((SEGMENTATION_SUFFIX,) + VOLUME_SUFFIXES):
            entries.append((case_name(entry), entry))
    return entries


def case_files(folder: Path) -> dict[str, Path]:
    """Cases of a folder: ``<case>/labels.nii.gz`` (the layout ``segment`` writes) or, failing
    that, ``<case>/segmentation.seg.nrrd``; and bare label files ``<case>.nii.gz`` etc."""
    return dict(_case_entries(folder))


def ambiguous_cases(folder: Path) -> dict[str, list[Path]]:
    """Cases named by more than one entry of a folder (``a.nii.gz`` and ``a.nrrd``, or a case
    folder ``a/`` and ``a.nii.gz``): which one is the reading would be a guess."""
    by_case: dict[str, list[Path]] = {}
    for case, path in _case_entries(folder):
        by_case.setdefault(case, []).append(path)
    return {case: paths for case, paths in by_case.items() if len(paths) > 1}
