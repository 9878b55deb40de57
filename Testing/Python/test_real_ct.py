"""The real RICORD COVID-19 CT and the lung-cancer CT, end to end through the CLI."""
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import slicerio
from scipy import ndimage

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.input.imageio import to_lps
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
    assert row["lesion_extent_pct"] < 3.0  # a mass, no COVID (issue "Accuracy"): 1.5 % with the bundled models


def test_thick_noisy_slices_give_the_same_measurements(cascade):
    """Robustness (issue "Accuracy"): the sample CT (3 mm) averaged into 6 mm slices with low-dose-like
    noise (Gaussian, SD 40 HU, seeded) keeps its lung volume and lesion extent."""
    from LungLesionQuantLib.input.imageio import read_ct
    from LungLesionQuantLib.measurement.quantify import measure_image
    from conftest import SAMPLE_CT

    ct = read_ct(SAMPLE_CT).image
    hu = sitk.GetArrayFromImage(ct)
    thick = hu[: hu.shape[0] // 2 * 2].reshape(-1, 2, *hu.shape[1:]).mean(axis=1)
    thick += np.random.default_rng(0).normal(0.0, 40.0, thick.shape).astype(np.float32)
    degraded = sitk.GetImageFromArray(thick.astype(np.float32))
    degraded.SetSpacing(ct.GetSpacing()[:2] + (2 * ct.GetSpacing()[2],))
    degraded.SetOrigin(ct.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, 0.5)))
    degraded.SetDirection(ct.GetDirection())
    original = measure_image(cascade.apply(ct).labels)
    changed = measure_image(cascade.apply(degraded).labels)
    assert changed["lung_volume_cm3"] == pytest.approx(original["lung_volume_cm3"], rel=0.05)
    assert changed["lesion_extent_pct"] == pytest.approx(original["lesion_extent_pct"], abs=2.5)


def test_ricord_zones_add_up_to_each_lung(ricord_run):
    """Zone columns (issue 13) partition each lung: sums equal the side's volume (6 significant digits)."""
    row = pd.read_csv(ricord_run / "measurements.csv").iloc[0]
    for side in ("right_", "left_"):
        for measure in ("lung", "GGO", "Cons", "lesion"):
            whole = row[f"{side}{measure}_volume_cm3"]
            for family in (("upper", "middle", "lower"), ("ventral", "dorsal")):
                assert sum(row[f"{side}{z}_{measure}_volume_cm3"] for z in family) == pytest.approx(whole, rel=1e-5, abs=1e-4)
    assert row["right_lower_lung_volume_cm3"] > 0 and row["left_upper_lung_volume_cm3"] > 0
