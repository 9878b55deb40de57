"""Derive the bundled sample CT from the RICORD case in ../shared/data (run once, by a developer).

Crops the RICORD 1a 419639-000082 chest CT to the body and the lung range, and resamples it
to 1.5 × 1.5 × 3 mm (Gaussian anti-aliasing first), int16 HU, gzip NIfTI.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from LungLesionQuantLib.input.imageio import read_ct, to_lps  # noqa: E402
from LungLesionQuantLib.training.lung_labels import body_mask, derive_lung_mask  # noqa: E402

SPACING = (1.5, 1.5, 3.0)


def main() -> None:
    source = REPO.parent / "shared" / "data" / "dicom" / "ricord_1a_000082"
    image = to_lps(read_ct(source).image)
    hu = sitk.GetArrayFromImage(image)
    body = body_mask(hu)
    lung = derive_lung_mask(hu, image.GetSpacing()[::-1])
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    plane = body.any(axis=0)
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    z0, z1 = max(0, zs[0] - 4), min(hu.shape[0], zs[-1] + 5)
    cropped = image[int(xs[0]):int(xs[-1]) + 1, int(ys[0]):int(ys[-1]) + 1, int(z0):int(z1)]
    sigma = [max(0.0, (n - o) / 2.0) for n, o in zip(SPACING, cropped.GetSpacing())]
    smooth = sitk.SmoothingRecursiveGaussian(cropped, sigma) if any(sigma) else cropped
    size = [int(round(sz * sp / ns)) for sz, sp, ns in zip(cropped.GetSize(), cropped.GetSpacing(), SPACING)]
    out = sitk.Resample(smooth, size, sitk.Transform(), sitk.sitkLinear, cropped.GetOrigin(), SPACING,
                        cropped.GetDirection(), -1024.0, sitk.sitkInt16)
    target = REPO / "Resources" / "Sample" / "ricord_000082_sample.nii.gz"
    sitk.WriteImage(out, str(target), useCompression=True)
    print(target, out.GetSize(), target.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
