"""Reading a chest CT from what a user has: a DICOM folder, a volume file, or a 2D slice image.

Everything comes back as a SimpleITK image in HU (float32), with a note of what was read.
What is not a CT in HU is refused with a one-line :class:`InputError` naming what was found.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import SimpleITK as sitk
from PIL import Image

from ..errors import InputError
from .enhanced_ct import frame_count, read_enhanced_ct
from .input_checks import check_dicom_geometry, check_dicom_series, check_file, check_slice_image, validate_ct
from .grey_levels import grey_pixels
from .grey_window import DOCUMENTED_WINDOW, GreyWindow, estimate_grey_window
from .view_gate import NOT_CT, radiograph_probability

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
SLICE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# 2D image files: CT slice exports, and radiographs (which also come as TIFF and BMP).
IMAGE_SUFFIXES = SLICE_IMAGE_SUFFIXES + (".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
SEGMENTATION_SUFFIX = ".seg.nrrd"
# Every suffix a case's file may carry, the longer of two that end alike first (.seg.nrrd, .nrrd).
CASE_SUFFIXES = (SEGMENTATION_SUFFIX,) + VOLUME_SUFFIXES + IMAGE_SUFFIXES + DICOM_SUFFIXES
# Largest gap between the R, G and B of a slice export's pixel that still counts as grey.
SLICE_GREY_TOLERANCE = 2
# DICOM Modality values of radiographs (read with --modality cxr).
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")


@dataclass
class LoadedCT:
    """A CT in HU and where it came from."""

    image: sitk.Image
    source: str
    kind: str  # "dicom", "volume" or "slice-image"
    note: str = ""
    dicom_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    window: GreyWindow | None = None  # the window an 8-bit slice was read under


def case_name(path: str | os.PathLike) -> str:
    """The case name of an input or a label file, the one rule for both: the file or folder
    name without any suffix of :data:`CASE_SUFFIXES` (of the path made absolute, so that
    'scans/..' names the folder 'scans' is in)."""
    name = Path(os.path.abspath(path)).name
    for suffix in CASE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_ct(path: str | os.PathLike, window: GreyWindow | None = None) -> LoadedCT:
    """Read a CT from a DICOM folder, a DICOM file, a volume file or a 2D PNG/JPG slice
    (``window``: the HU window of an 8-bit slice, when known; else estimated from the slice)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; expected a DICOM folder, a NIfTI/NRRD/MHA volume or a PNG/JPG slice")
    if path.is_dir():
        loaded = _read_dicom_folder(path)
    elif path.name.lower().endswith(SLICE_IMAGE_SUFFIXES):
        loaded = _read_slice_image(path, window)
    elif path.name.lower().endswith(VOLUME_SUFFIXES + DICOM_SUFFIXES):
        loaded = _read_volume_file(path)
    else:
        raise InputError(f"{path}: unrecognised file type '{path.suffix}'; expected a DICOM folder, .nii/.nii.gz/.nrrd/.mha, .dcm or .png/.jpg")
    validate_ct(loaded.image, loaded.source)
    return loaded


def _read_dicom_folder(folder: Path) -> LoadedCT:
    """Pick the axial CT series with the most slices among all series below ``folder``."""
    members: dict[str, list[str]] = {}
    visited: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:  # a symbolic link back into the tree: each folder is read once
            dirs[:] = []
            continue
        visited.add(real)
        if not files:
            continue
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(root) or ():
            members.setdefault(uid, []).extend(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(root, uid))
    # A series is one series wherever its files lie (check_dicom_series orders them by position).
    series = [(uid, names, _dicom_tag(names[0], "0008|0060").strip().upper()) for uid, names in members.items()]
    if not series:
        raise InputError(f"{folder}: found no DICOM series; expected a folder of CT DICOM files")
    ct = [s for s in series if s[2] == "CT"]
    if not ct:
        found = ", ".join(sorted({s[2] or "unknown" for s in series}))
        raise InputError(f"{folder}: found DICOM of modality {found}; expected CT")
    uid, names, _ = max(ct, key=lambda s: len(s[1]) * _frames(s[1][0]))
    source = f"{folder}: DICOM series {uid}"
    if _frames(names[0]) > 1:
        if len(names) > 1:
            raise InputError(f"{source}: found {len(names)} multi-frame files in one series; expected one Enhanced CT file or one file a slice")
        image, note, warnings = read_enhanced_ct(names[0], source)
        return LoadedCT(image, str(folder), "dicom", note, names, warnings)
    names, warnings = check_dicom_series(names, source)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    display = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # the checks above say what ITK would warn about
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{folder}: DICOM series {uid} could not be read ({_first_line(exc)}); expected a readable CT series") from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(display)
    note = f"DICOM series {uid} ({len(names)} slices)"
    if len(series) > 1:
        note += f", chosen as the CT series with most slices among {len(series)} series"
    return LoadedCT(sitk.Cast(image, sitk.sitkFloat32), str(folder), "dicom", note, names, warnings)


def _read_volume_file(path: Path) -> LoadedCT:
    check_file(path)
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return _read_dicom_file(path)
    image = _read_image(path)
    _check_scalar(image, path)
    return LoadedCT(sitk.Cast(image, sitk.sitkFloat32), str(path), "volume", f"{image.GetSize()} voxels")


def _read_dicom_file(path: Path) -> LoadedCT:
    """One DICOM file: a CT slice, or a whole Enhanced CT (multi-frame)."""
    modality = _dicom_tag(str(path), "0008|0060").strip().upper()
    if modality and modality != "CT":
        hint = " (a radiograph: pass --modality cxr)" if modality in RADIOGRAPH_MODALITIES else ""
        raise InputError(f"{path}: found DICOM of modality {modality}{hint}; expected CT")
    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise InputError(f"{path}: its DICOM header cannot be read ({type(exc).__name__}); expected a readable CT slice") from None
    if frame_count(header) > 1:
        enhanced, note, warnings = read_enhanced_ct(str(path), str(path))
        return LoadedCT(enhanced, str(path), "dicom", note, [str(path)], warnings)
    check_dicom_geometry([header], str(path))
    image = _read_image(path)
    _check_scalar(image, path)
    return LoadedCT(sitk.Cast(image, sitk.sitkFloat32), str(path), "dicom", f"{image.GetSize()} voxels", [str(path)])


def _read_image(path: Path) -> sitk.Image:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path}: could not be read as an image ({_first_line(exc)}); expected a CT volume") from None
    if image.GetDimension() == 2 and image.GetNumberOfComponentsPerPixel() == 1:
        image = sitk.JoinSeries(image)
    return image


def _read_slice_image(path: Path, window: GreyWindow | None = None) -> LoadedCT:
    """An 8-bit slice export, 1 mm pixels, read as HU under ``window``, else under the window
    estimated from the slice's own landmarks (:func:`.grey_window.estimate_grey_window`), else
    under the documented one (:data:`.grey_window.GREY8_WINDOW_HU`), with a warning."""
    check_slice_image(path)
    try:
        with Image.open(path) as opened:  # Pillow, as the training slices were read
            image = opened.convert("RGBA") if opened.mode == "P" else opened.copy()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: could not be read as an image ({_first_line(exc)})") from None
    grey = grey_pixels(image, path, "greyscale lung-window CT slice", SLICE_GREY_TOLERANCE)
    if grey.ndim != 2:
        raise InputError(f"{path}: found an image of shape {grey.shape}; expected a single 2D slice")
    p_radiograph = radiograph_probability(grey)
    if p_radiograph >= NOT_CT:
        raise InputError(f"{path}: looks like a chest radiograph (view check: p {p_radiograph:.2f}), not a CT slice; "
                         "expected an axial CT slice (for a radiograph, pass --modality cxr)")
    warnings = []
    if window is None:
        window = estimate_grey_window(grey)
        if window is None:
            window = DOCUMENTED_WINDOW
            warnings.append(f"8-bit slice: no aerated-lung and soft-tissue landmarks found; read under the {window.describe()}; "
                            "pass --window WIDTH/LEVEL if known")
        elif window.far_from_documented():
            warnings.append(f"8-bit slice: {window.describe()}; far from the documented window "
                            f"{DOCUMENTED_WINDOW.width:.0f}/{DOCUMENTED_WINDOW.level:.0f} HU; pass --window WIDTH/LEVEL if known")
    hu = sitk.GetImageFromArray(window.to_hu(grey)[None])
    hu.SetSpacing((1.0, 1.0, 1.0))
    return LoadedCT(hu, str(path), "slice-image", f"8-bit slice read under the {window.describe()}, 1 mm pixels",
                    warnings=warnings, window=window)


def _check_scalar(image: sitk.Image, path: Path) -> None:
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise InputError(f"{path}: found {components} components per voxel (colour or vector data); expected a single-channel CT in HU")
    if image.GetDimension() not in (2, 3):
        raise InputError(f"{path}: found a {image.GetDimension()}D image; expected a 3D CT volume")


def _dicom_tag(filename: str, tag: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(filename)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(tag) if reader.HasMetaDataKey(tag) else ""


def _frames(filename: str) -> int:
    """Frames in a DICOM file: an Enhanced CT holds its whole stack in one file."""
    try:
        return frame_count(pydicom.dcmread(filename, stop_before_pixels=True, specific_tags=["NumberOfFrames"]))
    except Exception:  # pydicom raises many kinds on damaged files; the series checks name them
        return 1


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def is_lps(image: sitk.Image) -> bool:
    """Whether the image's voxels are already indexed as :func:`to_lps` indexes them."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection()) == "LPS"


def to_lps(image: sitk.Image) -> sitk.Image:
    """The same voxels indexed (i→left, j→posterior, k→superior): radiological axial slices.
    The image itself where it is indexed so already (most CTs): a reorientation copies every
    voxel (0.4 s for a 512×512×255 CT on two cores), and a case would pay it several times."""
    return image if is_lps(image) else sitk.DICOMOrient(image, "LPS")
