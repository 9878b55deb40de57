"""Reading a chest radiograph: PNG/JPG (8 or 16 bit) or a DICOM CR/DX file.

Everything comes back as a one-slice SimpleITK image of display grey levels (float32, bright
= dense, as a radiologist reads it), its pixel spacing in mm where the DICOM gives one (else
1 "pixel" unit, and the measurements say so). What is not a frontal chest radiograph this tool
can read is refused with a one-line :class:`InputError`: colour photographs, stacks, lateral
views (by the DICOM view position; a PNG carries none), and CT or MR images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..input.imageio import IMAGE_SUFFIXES, RADIOGRAPH_MODALITIES
from ..input.input_checks import check_file
from ..input.view_gate import NOT_RADIOGRAPH, radiograph_probability
from .measure import SPACING_KNOWN_KEY

LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD")
MIN_SIDE = 64
# Largest gap between the R, G and B of a pixel that still counts as grey (JPEG ringing).
GREY_TOLERANCE = 6


@dataclass
class LoadedRadiograph:
    """A radiograph as display grey levels and where it came from."""

    image: sitk.Image
    source: str
    note: str
    spacing_known: bool
    warnings: list[str] = field(default_factory=list)
    dicom_files: list[str] = field(default_factory=list)

    @property
    def grey(self) -> np.ndarray:
        """The radiograph's (H, W) grey levels."""
        return sitk.GetArrayViewFromImage(self.image)[0]


def is_dicom_radiograph(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file whose Modality says radiograph (CR/DX): such files are
    radiographs without ``--modality cxr``."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:  # not DICOM at all: not a DICOM radiograph
        return False
    return str(getattr(ds, "Modality", "")).upper() in RADIOGRAPH_MODALITIES


def read_radiograph(path: str | os.PathLike) -> LoadedRadiograph:
    """Read one frontal chest radiograph from an image file or a DICOM CR/DX file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; expected a chest radiograph (PNG/JPG or DICOM CR/DX)")
    if path.is_dir():
        raise InputError(f"{path}: found a folder; expected one chest radiograph file (PNG/JPG or DICOM CR/DX)")
    check_file(path)
    if path.name.lower().endswith(IMAGE_SUFFIXES):
        grey, note = _read_image_file(path)
        _check_pixels(grey, path)
        p_radiograph = radiograph_probability(grey)
        if p_radiograph < NOT_RADIOGRAPH:  # DICOM says what it is; an image file does not
            raise InputError(f"{path}: looks like a CT slice (view check: p radiograph {p_radiograph:.2f}), not a chest "
                             "radiograph; expected a frontal chest radiograph (for a CT slice, omit --modality cxr)")
        spacing, spacing_known, files = (1.0, 1.0), False, []
    else:
        grey, spacing, note = _read_dicom(path)
        _check_pixels(grey, path)
        spacing_known, files = spacing is not None, [str(path)]
        spacing = spacing or (1.0, 1.0)
    image = sitk.GetImageFromArray(grey.astype(np.float32)[None])
    image.SetSpacing((float(spacing[1]), float(spacing[0]), 1.0))  # x = column spacing
    image.SetMetaData(SPACING_KNOWN_KEY, "1" if spacing_known else "0")
    warnings = [] if spacing_known else ["no pixel spacing in the file: areas are in pixels, not mm²"]
    return LoadedRadiograph(image, str(path), note, spacing_known, warnings, files)


def _read_image_file(path: Path) -> tuple[np.ndarray, str]:
    try:
        with Image.open(path) as im:
            im.load()
            mode, frames = im.mode, getattr(im, "n_frames", 1)
            array = np.asarray(im)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: could not be read as an image ({exc}); expected a chest radiograph") from None
    if frames > 1:
        raise InputError(f"{path}: found {frames} frames; expected a single chest radiograph")
    if mode == "1":
        raise InputError(f"{path}: found a 1-bit (black and white) image; expected a greyscale chest radiograph")
    if array.ndim == 3:
        colour = array[..., :3].astype(np.int32)
        if np.abs(colour - colour[..., :1]).max() > GREY_TOLERANCE:
            raise InputError(f"{path}: found a colour image; expected a greyscale chest radiograph")
        array = colour[..., 0]
    bits = 8 if array.dtype == np.uint8 or array.max() < 256 else 16
    return array.astype(np.float32), f"{array.shape[1]}x{array.shape[0]} {bits}-bit image, no pixel spacing"


def _read_dicom(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises several kinds on a damaged or foreign file
        raise InputError(f"{path}: could not be read as DICOM ({str(exc).splitlines()[0][:200]}); expected a DICOM CR/DX radiograph") from None
    modality = str(getattr(ds, "Modality", "")).upper()
    if modality not in RADIOGRAPH_MODALITIES:
        hint = " (a CT: run it without --modality cxr)" if modality == "CT" else ""
        raise InputError(f"{path}: found DICOM of modality {modality or 'unknown'}{hint}; expected a radiograph (CR or DX)")
    view = str(getattr(ds, "ViewPosition", "")).upper()
    if view in LATERAL_VIEWS:
        raise InputError(f"{path}: found a lateral view (ViewPosition {view}); expected a frontal (PA or AP) chest radiograph")
    if "PixelData" not in ds:
        raise InputError(f"{path}: DICOM without pixel data; expected a radiograph image")
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise InputError(f"{path}: found {ds.NumberOfFrames} frames; expected a single radiograph")
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise InputError(f"{path}: found {ds.SamplesPerPixel} samples per pixel (colour); expected a greyscale radiograph")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # missing codec, truncated data
        raise InputError(f"{path}: pixel data could not be decoded ({str(exc).splitlines()[0][:200]}); expected a readable radiograph") from None
    grey = apply_voi_lut(apply_modality_lut(pixels, ds), ds).astype(np.float32)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "MONOCHROME1":  # low values are bright: invert so that dense is bright
        grey = grey.max() + grey.min() - grey
    orientation = [str(v).upper() for v in getattr(ds, "PatientOrientation", [])]
    mirrored = bool(orientation) and orientation[0].startswith("R")
    if mirrored:  # rows run toward the patient's right: mirror to the usual display (patient right on the left)
        grey = grey[:, ::-1]
    spacing = None
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = getattr(ds, tag, None)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            spacing = (float(value[0]), float(value[1]))
            break
    note = (f"DICOM {modality} {pixels.shape[1]}x{pixels.shape[0]}, {getattr(ds, 'BitsStored', '?')} bits, {photometric}"
            + (f", view {view}" if view else "") + (", mirrored to the usual display (PatientOrientation R…)" if mirrored else "")
            + (f", {spacing[0]:.3f}x{spacing[1]:.3f} mm pixels" if spacing else ", no pixel spacing"))
    return grey, spacing, note


def _check_pixels(grey: np.ndarray, path: Path) -> None:
    if grey.ndim != 2:
        raise InputError(f"{path}: found an image of shape {grey.shape}; expected a single 2D radiograph")
    if min(grey.shape) < MIN_SIDE:
        raise InputError(f"{path}: found {grey.shape[1]}x{grey.shape[0]} pixels; expected a radiograph at least {MIN_SIDE} pixels on each side")
    if not np.isfinite(grey).all():
        raise InputError(f"{path}: found non-finite pixel values; expected a radiograph")
    if float(grey.max() - grey.min()) == 0.0:
        raise InputError(f"{path}: every pixel is {grey.flat[0]:g} (a blank image); expected a chest radiograph")
