"""Shared fixtures: the real data beside the repository, the bundled models, and phantoms."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("LLQ_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_CT = REPO / "Resources" / "Sample" / "ricord_000082_sample.nii.gz"
RICORD = SHARED_DATA / "dicom" / "ricord_1a_000082"
LUNG_CANCER_CT = SHARED_DATA / "dicom" / "lung_pet_ct_dx_A0001"


def shared(relative: str) -> Path:
    """A path in ../shared/data, or skip the test with a message saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data {path} is absent (set LLQ_SHARED_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def cascade():
    from LungLesionQuantLib.segmentation.cascade import Cascade

    return Cascade(device="cpu", threads=2)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """An output folder where `segment` ran once on the sample CT: tests that start from finished
    results copy it (never change it) instead of segmenting again."""
    from LungLesionQuantLib.cli import main

    out = tmp_path_factory.mktemp("sample_run")
    assert main(["segment", str(SAMPLE_CT), "-o", str(out), "--device", "cpu"]) == 0
    return out


def box_phantom(spacing=(0.7, 0.8, 2.5), direction=None) -> tuple[sitk.Image, dict]:
    """A label map with two box 'lungs' holding GGO and Cons boxes; exact expected volumes.

    Array order is (z, y, x) with x increasing to the patient's left when direction is identity.
    """
    labels = np.zeros((20, 40, 60), dtype=np.uint8)
    labels[2:18, 5:35, 4:26] = 1     # right lung (image left in radiological view): 16*30*22 voxels
    labels[2:18, 5:35, 34:56] = 1    # left lung: 16*30*22 voxels
    labels[4:8, 10:20, 6:16] = 2     # GGO in the right lung: 4*10*10
    labels[10:12, 10:13, 40:50] = 3  # Cons in the left lung: 2*3*10
    labels[12:14, 20:22, 36:41] = 2  # GGO in the left lung: 2*2*5
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, 5.0, 100.0))
    if direction is not None:
        image.SetDirection(direction)
    voxel = spacing[0] * spacing[1] * spacing[2] / 1000.0
    lung_side = 16 * 30 * 22 * voxel
    expected = {
        "lung_volume_cm3": 2 * lung_side,
        "GGO_volume_cm3": (400 + 20) * voxel,
        "Cons_volume_cm3": 60 * voxel,
        "right_lung_volume_cm3": lung_side, "right_GGO_volume_cm3": 400 * voxel, "right_Cons_volume_cm3": 0.0,
        "left_lung_volume_cm3": lung_side, "left_GGO_volume_cm3": 20 * voxel, "left_Cons_volume_cm3": 60 * voxel,
    }
    expected["LungN_volume_cm3"] = expected["lung_volume_cm3"] - expected["GGO_volume_cm3"] - expected["Cons_volume_cm3"]
    expected["lesion_volume_cm3"] = expected["GGO_volume_cm3"] + expected["Cons_volume_cm3"]
    expected["lesion_extent_pct"] = 100 * expected["lesion_volume_cm3"] / expected["lung_volume_cm3"]
    expected["right_lesion_extent_pct"] = 100 * 400 * voxel / lung_side
    expected["left_Cons_extent_pct"] = 100 * 60 * voxel / lung_side
    return image, expected


@pytest.fixture
def phantom():
    return box_phantom()
