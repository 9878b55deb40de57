"""`lunglesionquant evaluate`: per-slice scores, both empty rules, and real labelled slices."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import SAMPLE_CT, shared
from LungLesionQuantLib.cli import main
from LungLesionQuantLib.studies.evaluation import CODINGS, Evaluation, apply_coding, score_case, slice_metrics, summarise
from LungLesionQuantLib.labels import CONS, GGO, LUNG_NORMAL
from LungLesionQuantLib.measurement.overlap_metrics import dice as label_dice


def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def test_slice_metrics_count_pixels_and_leave_empty_labels_undefined():
    reference = np.zeros((2, 10, 10), np.uint8)
    predicted = np.zeros((2, 10, 10), np.uint8)
    reference[0, 0:4, 0:5] = GGO          # 20 pixels
    predicted[0, 0:4, 0:3] = GGO          # 12, all inside the reference
    predicted[0, 9, 0:4] = GGO            # 4 false positives
    row = slice_metrics(reference, predicted, ("GGO", "Cons"))
    assert row[0]["GGO_dice"] == pytest.approx(2 * 12 / (20 + 16))
    assert row[0]["GGO_sensitivity"] == pytest.approx(12 / 20)
    assert row[0]["GGO_specificity"] == pytest.approx((80 - 4) / 80)
    assert np.isnan(row[0]["Cons_dice"]) and np.isnan(row[0]["Cons_sensitivity"]) and row[0]["Cons_specificity"] == 1.0
    assert np.isnan(row[1]["GGO_dice"])  # empty in both: undefined, not 0 or 1


def test_summary_shows_both_empty_rules_and_volume_errors():
    reference = np.zeros((3, 10, 10), np.uint8)
    predicted = np.zeros((3, 10, 10), np.uint8)
    reference[:, 1:9, 1:9] = LUNG_NORMAL
    predicted[:, 1:9, 1:9] = LUNG_NORMAL
    reference[0, 2:6, 2:6] = CONS         # slice 0: Cons found exactly; slice 1: missed; slice 2: empty in both
    predicted[0, 2:6, 2:6] = CONS
    reference[1, 2:4, 2:4] = CONS
    slices, case = score_case(_image(reference, (0.5, 0.5, 2.0)), _image(predicted, (0.5, 0.5, 2.0)), CODINGS["llq"].groups)
    frame = pd.DataFrame([{"case": "a", **s} for s in slices])
    summary = summarise(Evaluation(frame, pd.DataFrame([{"case": "a", **case}]), CODINGS["llq"].groups, {"a": "llq"})).set_index("label")
    cons = summary.loc["Cons"]
    assert cons["empty_both"] == 1 and cons["dice_mean"] == pytest.approx(0.5)           # (1 + 0) / 2
    assert cons["dice_empty_as_1_mean"] == pytest.approx(2 / 3)                          # (1 + 0 + 1) / 3
    assert summary.loc["lung", "dice_mean"] == 1.0
    voxel_cm3 = 0.5 * 0.5 * 2.0 / 1000
    assert case["ref_Cons_volume_cm3"] == pytest.approx(20 * voxel_cm3)
    assert cons["volume_cm3_bias"] == pytest.approx(-4 * voxel_cm3)
    assert case["ref_Cons_extent_pct"] == pytest.approx(100 * 20 / (3 * 64))


def test_codings_map_reference_values_and_refuse_unknown_ones():
    raw = np.array([[0, 1, 2]], np.uint8)
    assert apply_coding(raw, "ggo-cons").tolist() == [[0, GGO, CONS]]
    assert apply_coding(raw, "lung").tolist() == [[0, LUNG_NORMAL, LUNG_NORMAL]]
    with pytest.raises(Exception, match=r"found label values \[5\]"):
        apply_coding(np.array([[0, 5]]), "ggo-cons")


@pytest.fixture(scope="module")
def semiseg_folders(tmp_path_factory):
    data = shared("semiseg_train")
    root = tmp_path_factory.mktemp("semiseg")
    for sub in ("images", "labels"):
        (root / sub).mkdir()
    for name in ("3", "17", "31", "44"):
        shutil.copy(data / "images" / f"{name}.jpg", root / "images")
        shutil.copy(data / "labels" / f"{name}.png", root / "labels")
    return root


def test_evaluate_on_real_labelled_slices(semiseg_folders, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--images", str(semiseg_folders / "images"), "--labels", str(semiseg_folders / "labels"),
                 "-o", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "empty in both" in printed and "GGO" in printed and "sensitivity" in printed and "MAE" in printed
    per_slice = pd.read_csv(out / "per_slice.csv", dtype={"case": str})
    assert sorted(per_slice["case"]) == ["17", "3", "31", "44"]
    for row in per_slice.itertuples():  # the scores are those of the written predictions
        reference = apply_coding(np.asarray(Image.open(semiseg_folders / "labels" / f"{row.case}.png")), "ggo-cons")
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "predictions" / f"{row.case}.nii.gz")))[0]
        assert row.lesion_dice == pytest.approx(label_dice(reference >= GGO, predicted >= GGO))
        assert row.Cons_dice == pytest.approx(label_dice(reference == CONS, predicted == CONS), nan_ok=True)
    assert per_slice["lesion_dice"].mean() > 0.3  # the bundled models find these opacities
    assert "lung_dice" not in per_slice  # these references label no lung: not scored


def test_evaluate_reports_a_broken_reference_and_scores_the_others(semiseg_folders, tmp_path, capsys):
    labels = tmp_path / "labels"
    shutil.copytree(semiseg_folders / "labels", labels)
    shape = np.asarray(Image.open(labels / "17.png")).shape
    Image.fromarray(np.full(shape, 5, np.uint8)).save(labels / "17.png")
    assert main(["evaluate", "--images", str(semiseg_folders / "images"), "--labels", str(labels), "--device", "cpu"]) == 1
    printed = capsys.readouterr().out
    assert "FAILED  17:" in printed and "found label values [5]" in printed
    assert "3 cases, 3 slices" in printed


def test_evaluate_a_volume_against_a_lung_mask(tmp_path, capsys):
    from LungLesionQuantLib.input.imageio import read_ct
    from LungLesionQuantLib.training.lung_labels import derive_lung_mask

    ct = read_ct(SAMPLE_CT).image
    hu = sitk.GetArrayFromImage(ct)
    lung = derive_lung_mask(hu, ct.GetSpacing()[::-1])
    mask = np.where(lung, 1 + (np.arange(hu.shape[2]) > hu.shape[2] // 2)[None, None, :], 0)  # 1/2: left/right, as expert masks come
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    shutil.copy(SAMPLE_CT, tmp_path / "images" / "sample.nii.gz")
    reference = _image(mask)
    reference.CopyInformation(ct)
    sitk.WriteImage(reference, str(tmp_path / "labels" / "sample.nii.gz"))
    assert main(["evaluate", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                 "--reference-coding", "lung", "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert "per-case 3D Dice" in capsys.readouterr().out
    case = pd.read_csv(tmp_path / "out" / "per_case.csv").iloc[0]
    assert case["lung_case_dice"] > 0.9  # against the HU-rule lung (not an expert mask)
    assert abs(case["pred_lung_volume_cm3"] / case["ref_lung_volume_cm3"] - 1) < 0.15
    assert "GGO_dice" not in pd.read_csv(tmp_path / "out" / "per_slice.csv")
