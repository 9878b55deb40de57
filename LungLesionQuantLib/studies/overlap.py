"""Agreement of two segmentations of one CT: overlap, surface distances, volumes and extents.

Rule for empty labels (Tang et al. 2020; :mod:`..measurement.overlap_metrics`): when a label is
empty in both segmentations its Dice, sensitivity, precision and distances are undefined; they
are reported as empty (NaN) with status ``empty in both`` — never as 0 or 1 — and cohort
averages skip them and count them. When a label is empty on one side only, Dice is 0 and the
distances are undefined.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..input.imageio import to_lps
from ..labels import CONS, GGO, LUNG_NORMAL
from ..measurement.overlap_metrics import Overlap
from ..measurement.quantify import measure_labels

LABEL_GROUPS = {"LungN": (LUNG_NORMAL,), "GGO": (GGO,), "Cons": (CONS,), "lesion": (GGO, CONS)}
EMPTY_RULE = ("A label empty in both segmentations has undefined Dice, sensitivity, precision and distances: "
              "reported empty (NaN) with status 'empty in both', skipped by averages and counted.")


def on_reference_grid(reference: sitk.Image, test: sitk.Image, name: str = "test") -> sitk.Image:
    """The test label image on the reference's voxel grid (nearest neighbour; exact when the grids agree)."""
    if reference.GetDimension() != test.GetDimension():
        raise InputError(f"{name}: a {test.GetDimension()}D label image against a {reference.GetDimension()}D reference; expected the same CT")
    ref_lo = np.array(reference.TransformIndexToPhysicalPoint((0,) * reference.GetDimension()))
    ref_hi = np.array(reference.TransformIndexToPhysicalPoint(tuple(s - 1 for s in reference.GetSize())))
    tst_lo = np.array(test.TransformIndexToPhysicalPoint((0,) * test.GetDimension()))
    tst_hi = np.array(test.TransformIndexToPhysicalPoint(tuple(s - 1 for s in test.GetSize())))
    lo, hi = np.minimum(ref_lo, ref_hi), np.maximum(ref_lo, ref_hi)
    tlo, thi = np.minimum(tst_lo, tst_hi), np.maximum(tst_lo, tst_hi)
    if np.any(thi < lo - 1.0) or np.any(tlo > hi + 1.0):
        raise InputError(f"{name}: its voxels do not overlap the reference's; expected two segmentations of the same CT")
    return sitk.Resample(test, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _grid(image: sitk.Image) -> str:
    size = "x".join(str(n) for n in image.GetSize())
    spacing = "x".join(f"{v:g}" for v in image.GetSpacing())
    return f"{size} voxels of {spacing} mm at ({', '.join(f'{v:g}' for v in image.GetOrigin())})"


def common_grid(reference: sitk.Image, test: sitk.Image, name: str = "test", cropped: bool = False) -> tuple[sitk.Image, sitk.Image]:
    """The two label images on one voxel grid, or a one-line refusal saying how the grids differ:
    resampling another grid would compare two different CTs (or a damaged export) with numbers
    that look right. The test's voxels must fall on the reference's voxels (axes may be permuted
    or flipped: the same voxels stored otherwise). Label maps must then cover the same voxels;
    with ``cropped`` (a Slicer ``.seg.nrrd``, saved cropped to its segments) they may cover
    less or more, and both are padded with background to the union."""
    dim = reference.GetDimension()
    if test.GetDimension() != dim:
        raise InputError(f"{name}: a {test.GetDimension()}D label image against a {dim}D reference; expected the same CT")
    to_ref_index = np.linalg.solve(np.reshape(reference.GetDirection(), (dim, dim)) @ np.diag(reference.GetSpacing()),
                                   np.reshape(test.GetDirection(), (dim, dim)) @ np.diag(test.GetSpacing()))
    steps = np.round(to_ref_index)
    offset = np.array(reference.TransformPhysicalPointToContinuousIndex(test.GetOrigin()))
    on_lattice = (np.abs(to_ref_index - steps).max() * max(test.GetSize()) < 0.1 and np.all(np.abs(steps).sum(axis=0) == 1)
                  and np.all(np.abs(steps).sum(axis=1) == 1) and np.abs(offset - np.round(offset)).max() < 0.1)
    found = f"{_grid(test)} against the reference's {_grid(reference)}"
    if not np.allclose(test.GetDirection(), reference.GetDirection(), atol=1e-4):
        found += f"; axes {np.round(test.GetDirection(), 3).tolist()} against {np.round(reference.GetDirection(), 3).tolist()}"
    if not on_lattice:
        raise InputError(f"{name}: on another voxel grid than the reference ({found}); expected segmentations of the same CT on its grid")
    corners = np.round(offset)[:, None] + steps @ np.array([[0] * dim, [n - 1 for n in test.GetSize()]]).T
    lo, hi, size = corners.min(axis=1).astype(int), corners.max(axis=1).astype(int), np.array(reference.GetSize())
    if np.any(hi < 0) or np.any(lo > size - 1):
        raise InputError(f"{name}: its voxels do not overlap the reference's ({found}); expected two segmentations of the same CT")
    if not cropped and (np.any(lo != 0) or np.any(hi != size - 1)):
        raise InputError(f"{name}: covers other voxels than the reference ({found}); expected label maps of the same CT on its whole grid")
    below, above = np.maximum(-lo, 0), np.maximum(hi - (size - 1), 0)
    if below.any() or above.any():
        reference = sitk.ConstantPad(reference, below.tolist(), above.tolist(), 0)
    return reference, sitk.Resample(test, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def surface_distances(reference: np.ndarray, test: np.ndarray, spacing_zyx: tuple[float, ...]) -> tuple[float, float]:
    """(95th-percentile Hausdorff, mean symmetric surface distance) in mm of two non-empty masks.

    Surfaces are the masks' boundary voxels (those with a face neighbour outside: SimpleITK LabelContour);
    each surface voxel's distance to the other surface comes from a Maurer distance map.
    HD95 is the larger of the two directed 95th percentiles; MSD averages both directions.
    """
    def image(mask: np.ndarray) -> sitk.Image:
        # padded, so that voxels on the volume's border count as surface
        img = sitk.GetImageFromArray(np.pad(mask, 1).astype(np.uint8))
        img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
        return img

    ref_surface = sitk.LabelContour(image(reference), fullyConnected=False)
    tst_surface = sitk.LabelContour(image(test), fullyConnected=False)

    def distance_to(surface: sitk.Image) -> np.ndarray:
        signed = sitk.SignedMaurerDistanceMap(surface, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
        return np.maximum(sitk.GetArrayViewFromImage(signed), 0.0)  # 0 on the surface itself

    d_tst = distance_to(ref_surface)[sitk.GetArrayFromImage(tst_surface) > 0]
    d_ref = distance_to(tst_surface)[sitk.GetArrayFromImage(ref_surface) > 0]
    hd95 = max(np.percentile(d_tst, 95), np.percentile(d_ref, 95))
    return float(hd95), float(np.concatenate([d_tst, d_ref]).mean())


def compare(reference: sitk.Image, test: sitk.Image, name: str = "test") -> dict:
    """One row: per label Dice, sensitivity, precision, HD95, MSD and status; then each side's
    measures (``ref_``, ``test_``) and their differences (``diff_`` = test − reference)."""
    test = on_reference_grid(reference, test, name)
    ref_lps, tst_lps = to_lps(reference), to_lps(test)
    ref, tst = sitk.GetArrayFromImage(ref_lps), sitk.GetArrayFromImage(tst_lps)
    spacing = ref_lps.GetSpacing()[::-1]
    row: dict = {}
    for label, values in LABEL_GROUPS.items():
        r, t = np.isin(ref, values), np.isin(tst, values)
        o = Overlap.of(r, t)
        nr, nt = o.reference, o.predicted
        status = "empty in both" if nr + nt == 0 else "empty in reference" if nr == 0 else "empty in test" if nt == 0 else "both present"
        hd95, msd = surface_distances(r, t, spacing) if nr and nt else (np.nan, np.nan)
        row.update({f"{label}_dice": o.dice, f"{label}_sensitivity": o.sensitivity,
                    f"{label}_precision": o.precision, f"{label}_hd95_mm": hd95,
                    f"{label}_msd_mm": msd, f"{label}_status": status})
    ref_m = measure_labels(ref, ref_lps.GetSpacing())
    tst_m = measure_labels(tst, ref_lps.GetSpacing())
    for key in ref_m:
        row[f"ref_{key}"] = ref_m[key]
        row[f"test_{key}"] = tst_m[key]
        row[f"diff_{key}"] = tst_m[key] - ref_m[key]
    return row
