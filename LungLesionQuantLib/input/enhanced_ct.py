"""Reading an Enhanced (multi-frame) CT: one DICOM file holding the whole stack, as current
scanners write it (Enhanced CT Image Storage, and the Legacy Converted Enhanced CT of archives).

The geometry lives in functional groups — per frame, or shared by all frames — not in the
top-level tags a classic slice carries, so the classic checks would find "no PixelSpacing".
Every frame's position, orientation, pixel size and rescale are read from its groups and the
frames are ordered and checked by the same rule as a classic series
(:func:`.input_checks.order_slices`); nothing missing is filled in.
"""
from __future__ import annotations

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import InputError
from .input_checks import check_tilt, order_slices


def frame_count(ds: Dataset) -> int:
    """How many frames a DICOM dataset holds (1 for a classic slice)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _group_value(ds: Dataset, frame: int, group: str, keyword: str):
    """``keyword`` of functional group ``group`` for ``frame``: the frame's own group first,
    then the shared one (as the standard defines), else None."""
    for sequence in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        items = ds.get(sequence)
        if not items:
            continue
        item = items[frame] if sequence.startswith("PerFrame") else items[0]
        if group in item and len(item[group].value) and keyword in item[group].value[0]:
            return item[group].value[0][keyword].value
    return None


def _required(ds: Dataset, frames: int, group: str, keyword: str, source: str) -> list:
    values = [_group_value(ds, i, group, keyword) for i in range(frames)]
    missing = sum(v is None for v in values)
    if missing:
        raise InputError(f"{source}: found no {keyword} in the {group} of {missing} of {frames} frame(s); expected it in "
                         "every frame of an Enhanced CT (without it volumes cannot be measured)")
    return values


def read_enhanced_ct(path: str, source: str) -> tuple[sitk.Image, str, list[str]]:
    """The HU volume of a multi-frame CT file, its note and warnings."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise InputError(f"{source}: the multi-frame DICOM cannot be read ({type(exc).__name__}); expected a readable Enhanced CT") from None
    frames = frame_count(ds)
    if str(ds.get("PhotometricInterpretation", "")).upper() != "MONOCHROME2" or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"{source}: found a multi-frame image stored as {ds.get('PhotometricInterpretation', 'unknown')} with "
                         f"{ds.get('SamplesPerPixel', 1)} sample(s) per pixel; expected a CT in HU (MONOCHROME2, one sample)")
    spacing = _required(ds, frames, "PixelMeasuresSequence", "PixelSpacing", source)
    orientation = np.array([[float(v) for v in o] for o in _required(ds, frames, "PlaneOrientationSequence", "ImageOrientationPatient", source)])
    positions = np.array([[float(v) for v in p] for p in _required(ds, frames, "PlanePositionSequence", "ImagePositionPatient", source)])
    spacing = np.array([[float(v) for v in s] for s in spacing])
    if np.abs(spacing - spacing[0]).max() > 1e-4 or np.abs(orientation - orientation[0]).max() > 1e-3:
        raise InputError(f"{source}: found frames of different pixel sizes or orientations in one Enhanced CT; expected one stack")
    check_tilt(max(abs(float(_group_value(ds, i, "CTAcquisitionDetailsSequence", "GantryDetectorTilt") or 0)) for i in range(frames)), source)
    slope = np.array([float(_group_value(ds, i, "PixelValueTransformationSequence", "RescaleSlope") or ds.get("RescaleSlope", 1))
                      for i in range(frames)], np.float32)
    intercept = np.array([float(_group_value(ds, i, "PixelValueTransformationSequence", "RescaleIntercept") or ds.get("RescaleIntercept", 0))
                          for i in range(frames)], np.float32)
    hu = _hounsfield(ds, path, frames, slope, intercept, source)
    labels = [f"frame {i + 1}" for i in range(frames)]
    keep, warnings = order_slices(orientation[0], positions, labels, lambda i, j: np.array_equal(hu[i], hu[j]), source)
    image = sitk.GetImageFromArray(hu[keep])
    row, column = orientation[0, :3], orientation[0, 3:]
    normal = np.cross(row, column)
    step = float(np.median(np.diff(positions[keep] @ normal))) if len(keep) > 1 else float(_group_value(ds, 0, "PixelMeasuresSequence", "SliceThickness") or 1.0)
    image.SetSpacing((spacing[0, 1], spacing[0, 0], step))  # PixelSpacing is (between rows, between columns)
    image.SetOrigin(tuple(positions[keep[0]]))
    image.SetDirection(tuple(np.column_stack([row, column, normal]).ravel()))
    return image, f"Enhanced CT, {len(keep)} frames", warnings


def _hounsfield(ds: Dataset, path: str, frames: int, slope: np.ndarray, intercept: np.ndarray, source: str) -> np.ndarray:
    """The frames in HU, (frames, rows, columns) float32. pydicom decodes what its installed
    handlers can and each frame gets its own rescale; compressed frames it cannot decode (JPEG
    lossless without pylibjpeg) are decoded by GDCM, which applies one rescale to all frames, so
    that is taken only where every frame has the same."""
    try:
        return ds.pixel_array.reshape(frames, int(ds.Rows), int(ds.Columns)).astype(np.float32) * slope[:, None, None] + intercept[:, None, None]
    except Exception as exc:  # no handler for the transfer syntax, or damaged pixel data: several kinds
        failure = f"{type(exc).__name__}, transfer syntax {ds.file_meta.get('TransferSyntaxUID', 'unknown')}"
    if np.ptp(slope) or np.ptp(intercept):
        raise InputError(f"{source}: the frames cannot be decoded with their own rescales ({failure}); expected pixel data "
                         "pydicom can decode")
    try:
        decoded = sitk.GetArrayFromImage(sitk.ReadImage(path, sitk.sitkFloat32))
    except RuntimeError:
        raise InputError(f"{source}: the frames cannot be decoded ({failure}); expected readable pixel data") from None
    if decoded.shape != (frames, int(ds.Rows), int(ds.Columns)):
        raise InputError(f"{source}: found {decoded.shape[0]} decodable frames of {frames}; expected every frame readable")
    return decoded
