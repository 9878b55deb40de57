"""Checks of what a user hands over, before the slow part: one place per kind of input.

Every check raises :class:`InputError` with one line naming what was found and what is
expected, or returns warnings for what it handled. What is refused and what is handled
(README, "Bad input"):

- files: a compressed stream that ends early, or a NIfTI / NRRD whose data is shorter than its
  header says, is refused (a reader would fill the rest with zeros); NIfTI pixel sizes must be
  positive (ITK reads 0 as 1 mm and ignores the sign); NaN in NIfTI floats is refused (ITK
  reads it as 0);
- geometry: voxel sizes finite and 0.1-20 mm, direction finite and orthonormal;
- voxels: all finite; a CT holds air (below -500 HU) and tissue (above -200 HU);
- DICOM series: every member readable with pixel data; one orientation; slice positions equally
  spaced within 5 % (0.1 mm at least) — a gap or an uneven series is refused, never averaged;
  an exact duplicate slice (same position, same pixels) is dropped with a warning, a different
  slice at the same position is refused;
- slice images: 8-bit greyscale (or grey stored as RGB) only; 1-bit and 16-bit are refused.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image

from ..errors import InputError

SPACING_MM = (0.1, 20.0)
AIR_HU = -500.0
TISSUE_HU = -200.0
SLICE_GAP_TOLERANCE = 0.05
SLICE_GAP_MIN_MM = 0.1
NRRD_TYPE_BYTES = {"uchar": 1, "unsigned char": 1, "uint8": 1, "uint8_t": 1, "char": 1, "signed char": 1, "int8": 1,
                   "int8_t": 1, "short": 2, "short int": 2, "signed short": 2, "int16": 2, "int16_t": 2, "ushort": 2,
                   "unsigned short": 2, "uint16": 2, "uint16_t": 2, "int": 4, "signed int": 4, "int32": 4, "int32_t": 4,
                   "uint": 4, "unsigned int": 4, "uint32": 4, "uint32_t": 4, "longlong": 8, "int64": 8, "int64_t": 8,
                   "ulonglong": 8, "uint64": 8, "uint64_t": 8, "float": 4, "double": 8}


def _stream_bytes(opened) -> int:
    """Bytes in a (decompressing) stream, read to its end; raises on a stream that ends early."""
    total = 0
    while chunk := opened.read(1 << 22):
        total += len(chunk)
    return total


def check_file(path: Path, values: str = "finite HU values") -> None:
    """A volume file whose stored data is complete (see the module docstring); ``values`` says
    what its voxels should hold, for the message on NaN."""
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            _check_nifti(path, values)
        elif name.endswith(".nrrd"):
            _check_nrrd(path)
        elif name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                _stream_bytes(f)
    except (EOFError, OSError, zlib.error, struct.error) as exc:
        raise InputError(f"{path}: could not be read to its end, the file is damaged or cut short ({exc}); expected a complete image file") from None


def _check_nifti(path: Path, values: str) -> None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(540)
        header = _nifti_header(head, path)
        dims, bitpix, datatype, pixdim, offset, order = header
        n = max(1, min(int(dims[0]), 7))
        spacing = pixdim[1:min(n, 3) + 1]
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise InputError(f"{path}: found voxel sizes {', '.join(f'{s:g}' for s in spacing)} mm in the header; "
                             "expected positive sizes (ITK would read 0 as 1 mm and drop the sign)")
        float_type = {16: order + "f4", 64: order + "f8"}.get(datatype)
        total, non_finite = len(head), 0
        pending = head[int(offset):] if float_type else b""
        while chunk := f.read(1 << 22):
            total += len(chunk)
            if float_type:
                pending += chunk
                usable = len(pending) - len(pending) % np.dtype(float_type).itemsize
                non_finite += int(np.count_nonzero(~np.isfinite(np.frombuffer(pending[:usable], dtype=float_type))))
                pending = pending[usable:]
    needed = int(offset) + int(np.prod([int(d) for d in dims[1:n + 1]])) * max(bitpix, 8) // 8
    if total < needed:
        raise InputError(f"{path}: found {total} bytes of data; the header needs {needed}: the file is cut short; "
                         "expected a complete image file")
    if non_finite:  # ITK's NIfTI reader would turn them into 0, a plausible HU
        raise InputError(f"{path}: found {non_finite} voxels that are NaN or infinite; expected {values}")


def _nifti_header(head: bytes, path: Path) -> tuple:
    """(dim, bitpix, datatype, pixdim, vox_offset, byte order) of a NIfTI-1 or NIfTI-2 header."""
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:
            return (struct.unpack(order + "8h", head[40:56]), struct.unpack(order + "h", head[72:74])[0],
                    struct.unpack(order + "h", head[70:72])[0], struct.unpack(order + "8f", head[76:108]),
                    struct.unpack(order + "f", head[108:112])[0], order)
        if len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:
            return (struct.unpack(order + "8q", head[16:80]), struct.unpack(order + "h", head[14:16])[0],
                    struct.unpack(order + "h", head[12:14])[0], struct.unpack(order + "8d", head[104:168]),
                    struct.unpack(order + "q", head[168:176])[0], order)
    raise InputError(f"{path}: found no NIfTI-1 or NIfTI-2 header; expected a NIfTI file")


def _check_nrrd(path: Path) -> None:
    with open(path, "rb") as f:
        raw = f.read()
    end = raw.find(b"\n\n")
    if end < 0:
        return  # no data in this file (a header-only file); ITK reports what it misses
    fields = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
    if "data file" in fields or "datafile" in fields:
        return
    data = raw[end + 2:]
    encoding = fields.get("encoding", "raw").lower()
    if encoding in ("gzip", "gz"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        size = len(inflater.decompress(data))
        if not inflater.eof:
            raise InputError(f"{path}: the compressed data ends early: the file is cut short; expected a complete image file")
    elif encoding == "raw":
        size = len(data)
    else:
        return
    item = NRRD_TYPE_BYTES.get(fields.get("type", "").lower())
    sizes = [int(s) for s in fields.get("sizes", "").split()]
    if item and sizes and size < item * int(np.prod(sizes)):
        raise InputError(f"{path}: found {size} bytes of data; the header needs {item * int(np.prod(sizes))}: "
                         "the file is cut short; expected a complete image file")


def check_geometry(image: sitk.Image, source: str) -> None:
    """Voxel sizes finite and within :data:`SPACING_MM`; direction finite and orthonormal."""
    spacing = image.GetSpacing()
    low, high = SPACING_MM
    if not all(np.isfinite(spacing)) or not all(low <= s <= high for s in spacing):
        raise InputError(f"{source}: found voxel sizes {' x '.join(f'{s:g}' for s in spacing)} mm; "
                         f"expected each between {low:g} and {high:g} mm")
    d = image.GetDimension()
    direction = np.array(image.GetDirection(), dtype=float).reshape(d, d)
    if not np.isfinite(direction).all() or not np.allclose(direction @ direction.T, np.eye(d), atol=1e-3):
        raise InputError(f"{source}: found an image direction that is not a rotation ({np.round(direction, 3).tolist()}); "
                         "expected orthonormal axes")


def check_voxels(image: sitk.Image, source: str) -> None:
    """Finite voxels; air below :data:`AIR_HU` and tissue above :data:`TISSUE_HU`."""
    array = sitk.GetArrayViewFromImage(image)
    if array.size == 0:
        raise InputError(f"{source}: the image is empty; expected a CT")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise InputError(f"{source}: found {bad} voxels that are NaN or infinite; expected finite HU values")
    lo, hi = float(array.min()), float(array.max())
    if lo > AIR_HU:
        hint = " (8-bit greyscale data; pass it as a .png/.jpg slice instead)" if lo >= 0 and hi <= 255 else ""
        raise InputError(f"{source}: found values {lo:g}..{hi:g}{hint}; expected a CT in HU with air near -1000")
    if hi < TISSUE_HU:
        raise InputError(f"{source}: found values {lo:g}..{hi:g}, nothing above {TISSUE_HU:g} HU; "
                         "expected a CT in HU with body tissue (about -100..+100)")


def validate_ct(image: sitk.Image, source: str) -> None:
    """Everything a CT image must be before it is segmented: :func:`check_geometry`, :func:`check_voxels`."""
    check_geometry(image, source)
    check_voxels(image, source)


def check_slice_image(path: Path) -> None:
    """An 8-bit greyscale slice export (grey stored as RGB allowed); other bit depths refused."""
    try:
        with Image.open(path) as im:
            mode = im.mode
    except OSError as exc:
        raise InputError(f"{path}: could not be read as an image ({exc})") from None
    if mode in ("1",):
        raise InputError(f"{path}: found a 1-bit (black and white) image; expected an 8-bit greyscale lung-window CT slice")
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise InputError(f"{path}: found a {mode} image (more than 8 bits per pixel, mapping to HU unknown); "
                         "expected an 8-bit greyscale lung-window CT slice (for HU data, pass a NIfTI/NRRD/DICOM volume)")


def check_dicom_series(names: list[str], source: str) -> tuple[list[str], list[str]]:
    """The members of a DICOM series in order, checked; returns (names to read, warnings).

    Refused: a member that cannot be read or holds no pixel data, a second orientation, uneven
    slice positions (a gap, or mixed spacing), a different slice at an occupied position. An
    exact duplicate is dropped with a warning. Members of the series that GDCM left out of
    ``names`` (unreadable ones) are looked for in the same folders.
    """
    datasets = []
    for name in names:
        try:
            ds = pydicom.dcmread(name)
        except Exception as exc:  # pydicom raises many kinds on damaged files
            raise InputError(f"{source}: member {Path(name).name} of the series cannot be read ({type(exc).__name__}); "
                             "expected every file of the series readable") from None
        if "PixelData" not in ds:
            raise InputError(f"{source}: member {Path(name).name} of the series holds no pixel data; expected an image in every file")
        datasets.append(ds)
    _look_for_left_out_members(names, str(datasets[0].get("SeriesInstanceUID", "")), source)
    check_dicom_geometry(datasets, source)
    if len(datasets) < 2:
        return names, []
    orientations = np.array([[float(v) for v in ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])] for ds in datasets])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise InputError(f"{source}: found slices of different orientations in one series; expected one orientation")
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    labels = [Path(name).name for name in names]
    keep, warnings = order_slices(orientations[0], positions, labels, lambda i, j: _pixels(datasets[i]) == _pixels(datasets[j]), source)
    return [names[i] for i in keep], warnings


def order_slices(orientation: np.ndarray, positions: np.ndarray, labels: list[str], same_pixels: Callable[[int, int], bool], source: str) -> tuple[list[int], list[str]]:
    """The slices of one stack in order along its normal, checked; returns (indices to read,
    warnings). The one rule for a classic series (a file a slice) and the frames of an Enhanced
    CT: equally spaced (a gap or mixed spacing refused, never averaged), an exact duplicate
    (``same_pixels(i, j)``) dropped with a warning, a different slice at an occupied position
    refused, and slices that step sideways as they go (a gantry tilt, whatever the tags say)
    refused, because stacking them unsheared would misplace every voxel."""
    normal = np.cross(orientation[:3], orientation[3:])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    keep = [int(order[0])]
    warnings = []
    for i in order[1:]:
        if abs(along[i] - along[keep[-1]]) < 1e-3:
            if not same_pixels(int(i), keep[-1]):
                raise InputError(f"{source}: {labels[i]} and {labels[keep[-1]]} are different slices at "
                                 f"the same position {along[i]:.2f} mm; expected one slice per position")
            warnings.append(f"{labels[i]} duplicates {labels[keep[-1]]} (same position, same pixels): left out")
            continue
        keep.append(int(i))
    steps = np.diff(along[keep])
    if not steps.size:
        return keep, warnings
    expected = float(np.median(steps))
    tolerance = max(SLICE_GAP_MIN_MM, SLICE_GAP_TOLERANCE * expected)
    uneven = np.flatnonzero(np.abs(steps - expected) > tolerance)
    if uneven.size:
        j = int(uneven[0])
        raise InputError(f"{source}: found {steps[j]:.2f} mm between slices {labels[keep[j]]} and "
                         f"{labels[keep[j + 1]]} where the series has {expected:.2f} mm ({uneven.size} such "
                         "step(s): a missing slice or mixed spacing); expected equally spaced slices")
    moves = np.diff(positions[keep], axis=0)
    sideways = np.linalg.norm(moves - np.outer(moves @ normal, normal), axis=1)
    shear = float(np.degrees(np.arctan2(sideways, np.abs(steps))).max())
    if shear > MAX_TILT_DEG:
        raise InputError(f"{source}: found slices that step {shear:.1f}° off their normal (a gantry tilt); {UNTILTED}")
    return keep, warnings


# A gantry tilt up to this (degrees) is read as if untilted (the slices' shear is under a voxel).
MAX_TILT_DEG = 0.5
UNTILTED = "expected an untilted CT series (resample it to axial slices first, e.g. with dcm2niix, which corrects tilt)"


def check_tilt(tilt_deg: float, source: str) -> None:
    """Refuse a gantry tilt the tags state (stacking tilted slices unsheared misplaces every voxel)."""
    if tilt_deg > MAX_TILT_DEG:
        raise InputError(f"{source}: found a gantry tilt of {tilt_deg:g}°; {UNTILTED}")


def check_dicom_geometry(datasets: list, source: str) -> None:
    """Refuse DICOM whose geometry the reader would fill in silently, so that volumes would be
    wrong with exit status 0: no PixelSpacing (1 mm would be assumed), slices without
    ImagePositionPatient (the slice spacing would be guessed), a gantry tilt (the slices would be
    stacked unsheared), a CT stored as colour (a screenshot: grey levels, not HU) or as MONOCHROME1
    (its grey levels inverted)."""
    count = len(datasets)
    for keyword, tag, why in (("PixelSpacing", "(0028,0030)", "the pixel size"), ("ImagePositionPatient", "(0020,0032)", "each slice's position")):
        if keyword == "ImagePositionPatient" and count < 2:
            continue
        missing = sum(keyword not in ds for ds in datasets)
        if missing:
            raise InputError(f"{source}: found no {keyword} {tag} in {missing} of {count} slice(s); expected {why} in every "
                             "slice (without it volumes cannot be measured)")
    check_tilt(max((abs(float(ds.get("GantryDetectorTilt", 0) or 0)) for ds in datasets), default=0.0), source)
    colour = next((ds for ds in datasets if int(ds.get("SamplesPerPixel", 1) or 1) != 1), None)
    if colour is not None:
        raise InputError(f"{source}: found a CT stored as {colour.get('PhotometricInterpretation', 'colour')} with "
                         f"{colour.SamplesPerPixel} samples per pixel (a screenshot or secondary capture, not HU); expected "
                         "the original CT series (MONOCHROME2, one sample per pixel)")
    if any(str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1" for ds in datasets):
        raise InputError(f"{source}: found a CT stored as MONOCHROME1 (inverted grey levels); expected MONOCHROME2, "
                         "as CT in HU is stored")


def _pixels(ds) -> str:
    return hashlib.sha256(bytes(ds.PixelData)).hexdigest()


def _look_for_left_out_members(names: list[str], series_uid: str, source: str) -> None:
    """Files beside the series' members that GDCM did not list: refused when they are DICOM of
    this series or DICOM that cannot be read at all (a damaged member)."""
    listed = {os.path.abspath(n) for n in names}
    for folder in {os.path.dirname(os.path.abspath(n)) for n in names}:
        for entry in os.scandir(folder):
            if not entry.is_file() or entry.name.startswith(".") or entry.path in listed:
                continue
            try:
                ds = pydicom.dcmread(entry.path, stop_before_pixels=True)
            except Exception:  # not DICOM at all, or DICOM too damaged to parse
                if _has_dicom_preamble(entry.path):
                    raise InputError(f"{source}: {entry.name} is a DICOM file that cannot be read; expected every "
                                     "file of the series readable") from None
                continue
            if str(ds.get("SeriesInstanceUID", "")) == series_uid:
                raise InputError(f"{source}: member {entry.name} of the series cannot be read as an image; "
                                 "expected every file of the series readable")


def _has_dicom_preamble(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM"
