"""Reading a chest radiograph: PNG/JPG/TIFF/BMP (8 or 16 bit, grey, palette) or a DICOM CR/DX file.

Everything comes back as a one-slice SimpleITK image of display grey levels (float32, bright
= dense, as a radiologist reads it, upright), its pixel spacing in mm where the DICOM gives one
(else 1 "pixel" unit, and the measurements say so). What is not a frontal chest radiograph this
tool can read is refused with a one-line :class:`InputError`: colour photographs, stacks, lateral
views (by the DICOM view position; a PNG carries none), and CT or MR images (by the DICOM
Modality, and for every file by the view check, since a CT slice can be stored as DX).

A film is read the way it is displayed, whatever way it was stored: the EXIF orientation of a
JPEG is applied, a palette image is read through its palette, a DICOM's modality LUT, VOI LUT or
window and photometric interpretation are applied (a VOI window that would leave most of the
film black or white is ignored, with a warning), and its PatientOrientation is followed. What no
tag says — a film stored turned by quarter turns or as a negative — is found by the radiograph
network itself (:meth:`.segment.RadiographNet.lung_field_checks`): the film is read the way its
lung fields are most plausible, with a warning, or refused where two ways are about as plausible.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from ..input.grey_levels import grey_pixels
from ..input.imageio import IMAGE_SUFFIXES, RADIOGRAPH_MODALITIES
from ..input.input_checks import check_file
from ..input.view_gate import NOT_CT, NOT_RADIOGRAPH, radiograph_probability
from .measure import SPACING_KNOWN_KEY
from .segment import ORIENTATIONS, LungFieldCheck, Orientation, RadiographNet

LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD")
MIN_SIDE = 64
# Largest gap between the R, G and B of a pixel that still counts as grey (JPEG ringing).
GREY_TOLERANCE = 6
# Pillow modes whose pixels are not grey levels as stored: read through RGB(A).
CONVERTED_MODES = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV")
EXIF_ORIENTATION = 0x0112
# A DICOM VOI LUT or window is a display choice for the film; one that leaves more than this
# share of it black or white beyond what its stored values already are (padding, a burnt-out
# background) is not one for this film (a width of 1 makes it black and white) and is ignored.
VOI_MAX_CLIPPED = 0.5
# Grey levels within this share of the range from either end count as black or white.
SATURATED = 0.005
# Which way up (the network's lung-field confidence, :class:`.segment.LungFieldCheck`). Measured on
# 50 COVID-QU-Ex films in all 8 ways (and 20 of them resampled 300x360 with a black border, a
# gamma of 0.7 and 12 bits), checked on 28 others: upright films 0.92-0.99, turned or inverted
# ones at most 0.957; the upright way was the most confident in all 98, by 0.007 at the least.
# As stored, two side-by-side fields at least this confident are read as stored (one inference);
UPRIGHT_SURE = 0.97
# else all 8 ways are checked, and another way is taken where it is more confident by this much
# (closer: the film is refused as ambiguous, never guessed).
UPRIGHT_MARGIN = 0.01


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


def read_radiograph(path: str | os.PathLike, net: RadiographNet | None = None) -> LoadedRadiograph:
    """Read one frontal chest radiograph from an image file or a DICOM CR/DX file, upright and
    positive (see the module docstring), or refuse it in one line. ``net``: the network that will
    segment it (its ``--models``), which also tells which way up the film is; else the bundled one."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; expected a chest radiograph (PNG/JPG or DICOM CR/DX)")
    if path.is_dir():
        raise InputError(f"{path}: found a folder; expected one chest radiograph file (PNG/JPG or DICOM CR/DX)")
    check_file(path)
    if path.name.lower().endswith(IMAGE_SUFFIXES):
        grey, note = _read_image_file(path)
        spacing, warnings, files, stored_as = None, [], [], ""
    else:
        grey, spacing, note, warnings, modality = _read_dicom(path)
        files, stored_as = [str(path)], f" although stored as DICOM {modality}"
    _check_pixels(grey, path)
    refusal = _view_refusal(grey, path, stored_as)
    orientation, turn_warnings = _upright(grey, path, refusal, net or _bundled_model())
    if orientation != Orientation():
        grey = orientation.apply(grey)
        note += f", read {orientation.describe()}"
        spacing = spacing[::-1] if spacing and orientation.turns % 2 else spacing
    spacing_known = spacing is not None
    spacing = spacing or (1.0, 1.0)
    image = sitk.GetImageFromArray(grey.astype(np.float32)[None])
    image.SetSpacing((float(spacing[1]), float(spacing[0]), 1.0))  # x = column spacing
    image.SetMetaData(SPACING_KNOWN_KEY, "1" if spacing_known else "0")
    warnings += turn_warnings + ([] if spacing_known else ["no pixel spacing in the file: areas are in pixels, not mm²"])
    return LoadedRadiograph(image, str(path), note, spacing_known, warnings, files)


def _read_image_file(path: Path) -> tuple[np.ndarray, str]:
    """Grey levels of an image file as displayed: its EXIF orientation applied, a palette or other
    colour space read through RGB (grey if R = G = B), an alpha that hides nothing dropped."""
    try:
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            exif_orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            shown = ImageOps.exif_transpose(im)
            shown.load()
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: could not be read as an image ({str(exc).splitlines()[0][:200]}); expected a chest radiograph") from None
    if frames > 1:
        raise InputError(f"{path}: found {frames} frames; expected a single chest radiograph")
    mode = shown.mode
    if mode == "1":
        raise InputError(f"{path}: found a 1-bit (black and white) image; expected a greyscale chest radiograph")
    if mode in CONVERTED_MODES:
        shown = shown.convert("RGBA" if mode == "PA" or "transparency" in shown.info else "RGB")
    array = grey_pixels(shown, path, "greyscale chest radiograph", GREY_TOLERANCE)
    bits = 8 if array.dtype == np.uint8 or array.max() < 256 else 16
    note = f"{array.shape[1]}x{array.shape[0]} {bits}-bit image" + (f" ({mode} mode)" if mode in CONVERTED_MODES else "")
    note += (f", EXIF orientation {exif_orientation} applied" if exif_orientation in range(2, 9) else "") + ", no pixel spacing"
    return array.astype(np.float32), note


def _read_dicom(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, str, list[str], str]:
    import pydicom
    from pydicom.pixels import apply_modality_lut

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
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"{path}: found {getattr(ds, 'SamplesPerPixel', 1)} sample(s) per pixel, {photometric} (colour); "
                         "expected a greyscale (MONOCHROME1/2) radiograph")
    try:
        values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    except Exception as exc:  # missing codec, truncated data, a malformed modality LUT
        raise InputError(f"{path}: pixel data could not be decoded ({str(exc).splitlines()[0][:200]}); expected a readable radiograph") from None
    grey, voi_note, warnings = _voi(values, ds)
    if photometric == "MONOCHROME1":  # low values are bright: invert so that dense is bright
        grey = grey.max() + grey.min() - grey
    grey, turned = _patient_orientation(grey, [str(v).upper() for v in getattr(ds, "PatientOrientation", [])])
    spacing = None
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = getattr(ds, tag, None)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            spacing = (float(value[0]), float(value[1]))
            break
    if spacing and "transposed" in turned:
        spacing = spacing[::-1]
    note = (f"DICOM {modality} {values.shape[1]}x{values.shape[0]}, {getattr(ds, 'BitsStored', '?')} bits, {photometric}{voi_note}"
            + (f", view {view}" if view else "") + turned
            + (f", {spacing[0]:.3f}x{spacing[1]:.3f} mm pixels" if spacing else ", no pixel spacing"))
    return grey.astype(np.float32), spacing, note, warnings, modality


def _voi(values: np.ndarray, ds) -> tuple[np.ndarray, str, list[str]]:
    """The film's display values: its VOI LUT or window applied (pydicom: LINEAR, LINEAR_EXACT,
    SIGMOID, on the modality LUT's output), unless it is not a display choice for this film: one
    pydicom refuses (a width under 1, an unknown function) or one leaving most of it black or
    white (:data:`VOI_MAX_CLIPPED`). The network scales each film by its own percentiles, so the
    film's own values lose nothing but the window's curve."""
    from pydicom.pixels import apply_voi_lut

    if "VOILUTSequence" in ds:
        described = "VOI LUT"
    elif "WindowWidth" in ds:
        described = f"VOI window {_shown(ds.get('WindowCenter'))}/{_shown(ds.WindowWidth)} (centre/width)"
    else:
        return values, "", []
    try:
        shown = np.asarray(apply_voi_lut(values.copy(), ds), np.float64)
    except Exception as exc:  # pydicom raises ValueError, TypeError or KeyError on a malformed VOI module
        problem = str(exc).splitlines()[0][:120] or type(exc).__name__
    else:
        clipped = _saturated(shown) - _saturated(values)
        if clipped <= VOI_MAX_CLIPPED:
            return shown, f", {described} applied", []
        problem = f"it would leave {100 * clipped:.0f} % of the film black or white"
    return values, f", {described} ignored", [f"the DICOM {described} was ignored ({problem}): read with the film's own grey levels"]


def _shown(value: object) -> str:
    """A DICOM element's first value (the one pydicom applies), as a message shows it."""
    first = value[0] if isinstance(value, Sequence) and not isinstance(value, str) and len(value) else value
    try:
        return f"{float(first):g}"
    except (TypeError, ValueError):
        return str(first)


def _saturated(values: np.ndarray) -> float:
    """Share of pixels at either end of the grey range (all of them where the range is empty)."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return 1.0
    margin = SATURATED * (high - low)
    return float(np.mean((values <= low + margin) | (values >= high - margin)))


def _patient_orientation(grey: np.ndarray, orientation: list[str]) -> tuple[np.ndarray, str]:
    """The film as usually displayed (rows run to the patient's left, columns to the feet), where
    PatientOrientation says how its rows and columns run (first letter of each: L/R, H/F)."""
    if len(orientation) != 2 or not all(orientation):
        return grey, ""
    rows, columns = orientation[0][0], orientation[1][0]
    done = []
    if rows in "HF" and columns in "LR":
        grey, rows, columns = grey.T, columns, rows
        done.append("transposed")
    if rows == "R":
        grey = grey[:, ::-1]
        done.append("mirrored")
    if columns == "H":
        grey = grey[::-1]
        done.append("flipped upside down")
    if not done:
        return grey, ""
    return np.ascontiguousarray(grey), f", {' and '.join(done)} to the usual display (PatientOrientation {'/'.join(orientation)})"


def _check_pixels(grey: np.ndarray, path: Path) -> None:
    if grey.ndim != 2:
        raise InputError(f"{path}: found an image of shape {grey.shape}; expected a single 2D radiograph")
    if min(grey.shape) < MIN_SIDE:
        raise InputError(f"{path}: found {grey.shape[1]}x{grey.shape[0]} pixels; expected a radiograph at least {MIN_SIDE} pixels on each side")
    if not np.isfinite(grey).all():
        raise InputError(f"{path}: found non-finite pixel values; expected a radiograph")
    if float(grey.max() - grey.min()) == 0.0:
        raise InputError(f"{path}: every pixel is {grey.flat[0]:g} (a blank image); expected a chest radiograph")


def _view_refusal(grey: np.ndarray, path: Path, stored_as: str) -> str | None:
    """The view check (:mod:`..input.view_gate`), run on every file since a CT slice can be stored
    as DICOM DX: None where the image may be a radiograph; else the refusal, raised at once unless
    the image's negative looks like a radiograph (the gate learnt positive films), when it stands
    only if the film does not read as a negative (:func:`_upright`)."""
    p_radiograph = radiograph_probability(grey)
    if p_radiograph >= NOT_RADIOGRAPH:
        return None
    refusal = (f"{path}: looks like a CT slice (view check: p radiograph {p_radiograph:.2f}){stored_as}, not a chest radiograph; "
               "expected a frontal chest radiograph" + ("" if stored_as else " (for a CT slice, omit --modality cxr)"))
    if radiograph_probability(grey.max() + grey.min() - grey) < NOT_CT:
        raise InputError(refusal)
    return refusal


@lru_cache(maxsize=1)
def _bundled_model() -> RadiographNet:
    return RadiographNet(device="cpu", threads=1)


def _upright(grey: np.ndarray, path: Path, refusal: str | None, net: RadiographNet) -> tuple[Orientation, list[str]]:
    """The way to read the film: as stored where its lung fields are plausible so; else the way of
    :data:`.segment.ORIENTATIONS` whose two side-by-side lung fields the network is most confident
    of, clearly (:data:`UPRIGHT_MARGIN`), with a warning; refused where that is not clear. With a
    view-check ``refusal``, only a confident negative reading lifts it."""
    stored = net.lung_field_checks(grey, ORIENTATIONS[:1])[0]
    if refusal is None and stored.side_by_side and stored.confidence >= UPRIGHT_SURE:
        return stored.orientation, []
    checks = [stored] + net.lung_field_checks(grey, ORIENTATIONS[1:])
    best = max((c for c in checks if c.side_by_side), key=lambda c: c.confidence, default=stored)
    if refusal is not None:
        if best.orientation.inverted and best.confidence >= UPRIGHT_SURE:
            return best.orientation, [_turned(best, stored)]
        raise InputError(f"{refusal}; nor does it read as a negative film (lung-field confidence {best.confidence:.2f})")
    if best is stored:
        return stored.orientation, []
    if best.confidence - stored.confidence >= UPRIGHT_MARGIN:
        return best.orientation, [_turned(best, stored)]
    raise InputError(f"{path}: cannot tell which way up the film is: its lung fields are about as plausible read {best.orientation.describe()} "
                     f"(confidence {best.confidence:.3f}) as stored ({stored.confidence:.3f}); expected an upright frontal chest radiograph, "
                     "dense bright (store it upright and positive)")


def _turned(best: LungFieldCheck, stored: LungFieldCheck) -> str:
    return (f"the film is not stored upright and positive: read {best.orientation.describe()}, where its lung fields are plausible "
            f"(confidence {best.confidence:.3f}; as stored {stored.confidence:.3f}); check the overlay")
