"""Observer agreement: metrics against independent implementations, hand-worked statistics,
empty labels, missing cases, and the command on real segmentations."""
import math
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from conftest import SAMPLE_CT, shared
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from PIL import Image
from scipy import ndimage, stats
from sklearn.metrics import f1_score

from LungLesionQuantLib.studies.agreement import (
    compare_folders,
    lin_ccc,
    paired_statistics,
    summarise,
    write_study,
)
from LungLesionQuantLib.cli import main
from LungLesionQuantLib.input.imageio import read_ct, to_lps
from LungLesionQuantLib.studies.overlap import compare, surface_distances


def _image(array, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def _monai(reference, test, spacing):
    r, t = torch.from_numpy(reference[None, None]), torch.from_numpy(test[None, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (float(compute_hausdorff_distance(t, r, percentile=95, spacing=spacing)),
                float(compute_average_surface_distance(t, r, symmetric=True, spacing=spacing)))


def test_dice_and_distances_match_independent_implementations_on_real_slices(cascade):
    folder = shared("semiseg_train")
    for name in ("3", "17", "42"):
        reference = np.asarray(Image.open(folder / "labels" / f"{name}.png"))
        reference = np.where(reference == 1, 2, np.where(reference == 2, 3, 0)).astype(np.uint8)
        predicted = cascade.apply(read_ct(folder / "images" / f"{name}.jpg").image).labels
        row = compare(_image(reference[None]), predicted)
        pred = sitk.GetArrayFromImage(predicted)[0]
        for label, values in (("GGO", (2,)), ("lesion", (2, 3))):
            r, p = np.isin(reference, values), np.isin(pred, values)
            if r.any() and p.any():
                assert row[f"{label}_dice"] == pytest.approx(f1_score(r.ravel(), p.ravel()), abs=1e-12)
                hd95, msd = _monai(r[None], p[None], (1.0, 1.0, 1.0))
                assert row[f"{label}_hd95_mm"] == pytest.approx(hd95, abs=1e-4)
                assert row[f"{label}_msd_mm"] == pytest.approx(msd, abs=1e-4)


def test_3d_anisotropic_distances_match_monai(cascade):
    labels = sitk.GetArrayFromImage(to_lps(cascade.apply(read_ct(SAMPLE_CT).image).labels))
    lung = labels > 0
    shrunk = ndimage.binary_erosion(lung, iterations=2)
    spacing = (3.0, 1.5, 1.5)
    assert surface_distances(lung, shrunk, spacing) == pytest.approx(_monai(lung, shrunk, spacing), abs=1e-4)


def test_hand_worked_paired_statistics():
    ref = np.array([10.0, 20.0, 30.0, 40.0])
    test = np.array([12.0, 18.0, 33.0, 40.0])          # differences 2, -2, 3, 0
    s = paired_statistics(ref, test)
    assert s["n"] == 4
    assert s["mae"] == pytest.approx(1.75)               # (2 + 2 + 3 + 0) / 4
    assert s["bias"] == pytest.approx(0.75)              # (2 - 2 + 3 + 0) / 4
    assert s["bias_sd"] == pytest.approx(math.sqrt(14.75 / 3))
    t = 0.75 / (math.sqrt(14.75 / 3) / 2)
    assert s["t_p"] == pytest.approx(2 * stats.t.sf(t, df=3))
    d = ref - ref.mean(), test - test.mean()
    assert s["pearson_r"] == pytest.approx((d[0] @ d[1]) / math.sqrt((d[0] @ d[0]) * (d[1] @ d[1])))
    # ICC(2,1) by its two-way ANOVA mean squares (Shrout & Fleiss)
    x = np.stack([ref, test], axis=1)
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    assert s["icc"] == pytest.approx((msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n))


def test_empty_labels_are_reported_not_scored():
    ref = np.zeros((1, 20, 20), np.uint8)
    ref[0, 5:15, 5:15] = 1
    ref[0, 6:9, 6:9] = 2
    test = ref.copy()
    test[0, 12:14, 12:14] = 3                              # Cons only in the test
    row = compare(_image(ref), _image(test))
    assert row["GGO_dice"] == 1.0 and row["GGO_status"] == "both present"
    assert row["Cons_dice"] == 0.0 and row["Cons_status"] == "empty in reference"
    assert math.isnan(row["Cons_sensitivity"]) and math.isnan(row["Cons_hd95_mm"])
    row = compare(_image(ref), _image(ref))
    assert math.isnan(row["Cons_dice"]) and row["Cons_status"] == "empty in both"
    summary = summarise(pd.DataFrame([{"test_set": "t", "case": "a", **row}]))
    cons = summary.set_index("measure").loc["Cons Dice"]
    assert cons["n"] == 0 and cons["n_empty_both"] == 1 and math.isnan(cons["mean"])


def test_missing_cases_are_listed_and_grids_must_match(tmp_path):
    ref, test = tmp_path / "ref", tmp_path / "obs2"
    ref.mkdir(), test.mkdir()
    base = np.zeros((2, 10, 10), np.uint8)
    base[:, 2:8, 2:8] = 1
    for case in ("a", "b", "c"):
        sitk.WriteImage(_image(base), str(ref / f"{case}.nii.gz"))
    for case in ("a", "b", "d"):
        sitk.WriteImage(_image(base), str(test / f"{case}.nii.gz"))
    far = _image(base)
    far.SetOrigin((500.0, 0.0, 0.0))
    sitk.WriteImage(far, str(test / "b.nii.gz"))
    result = compare_folders(ref, [test])
    assert result.per_case["case"].tolist() == ["a"]
    assert {(r.case, r.missing_from) for r in result.missing.itertuples()} == {("c", "test"), ("d", "reference")}
    assert len(result.failures) == 1 and "do not overlap" in result.failures[0]
    written = write_study(result, tmp_path / "out")
    notes = written["notes.txt"].read_text()
    assert "Missing: c has no test segmentation" in notes and "empty in both" in notes


def test_agreement_command_on_segment_output(sample_run, tmp_path, capsys):
    ref = tmp_path / "auto"
    shutil.copytree(sample_run, ref)
    shutil.copytree(ref / "ricord_000082_sample", ref / "second")  # a second case, as segment lays it out
    edited = tmp_path / "edited"
    shutil.copytree(ref, edited)
    # observer 2 calls the GGO of the lowest third of the sample's slices normal lung
    path = edited / "ricord_000082_sample" / "labels.nii.gz"
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    low = array[: array.shape[0] // 3]
    low[low == 2] = 1
    out_image = sitk.GetImageFromArray(array)
    out_image.CopyInformation(image)
    sitk.WriteImage(out_image, str(path))
    # for the other case only the .seg.nrrd is left: it is read through its segment names
    (edited / "second" / "labels.nii.gz").unlink()
    (edited / "extra.nii.gz").write_bytes((ref / "ricord_000082_sample" / "labels.nii.gz").read_bytes())
    out = tmp_path / "agreement"
    status = main(["agreement", "--reference", str(ref), "--test", str(edited), "-o", str(out)])
    printed = capsys.readouterr().out
    assert status == 0 and "lesion Dice" in printed and "Missing: extra has no reference segmentation" in printed
    per_case = pd.read_csv(out / "per_case.csv").set_index("case")
    assert list(per_case.index) == ["ricord_000082_sample", "second"]
    second = per_case.loc["second"]
    assert second["LungN_dice"] == 1.0 and second["diff_lesion_volume_cm3"] == 0.0
    sample = per_case.loc["ricord_000082_sample"]
    changed = int(((sitk.GetArrayFromImage(sitk.ReadImage(str(ref / "ricord_000082_sample" / "labels.nii.gz"))) == 2)[: array.shape[0] // 3]).sum())
    if changed:
        assert sample["GGO_precision"] == 1.0 and sample["GGO_sensitivity"] < 1.0
        assert sample["diff_GGO_volume_cm3"] < 0 and sample["diff_lung_volume_cm3"] == pytest.approx(0.0, abs=1e-9)
    assert (out / "bland_altman_edited_lesion_volume_cm3.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(out / "table2.csv", index_col=0)
    assert "lesion Dice" in table.index and "edited" in table.columns


def test_lin_ccc_against_its_formula_a_known_shift_and_a_bootstrap():
    """Issue 17, item 7: Lin's CCC is its formula; identical readings give 1; a pure shift d gives
    2s²/(2s² + d²) where Pearson's r stays 1; the CI's width matches a bootstrap of Fisher's z."""
    rng = np.random.default_rng(21)
    x = rng.normal(50, 10, 40)
    y = 0.9 * x + 3 + rng.normal(0, 4, 40)
    ccc, lo, hi = lin_ccc(x, y)
    cov = np.cov(x, y, bias=True)
    assert ccc == pytest.approx(2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2))
    assert lo < ccc < hi < 1
    assert paired_statistics(x, y)["ccc"] == pytest.approx(ccc) and paired_statistics(x, y)["ccc_ci_low"] == pytest.approx(lo)
    fisher_z = []
    for _ in range(3000):
        rows = rng.integers(0, x.size, x.size)
        fisher_z.append(np.arctanh(lin_ccc(x[rows], y[rows])[0]))
    assert np.std(fisher_z) == pytest.approx((np.arctanh(hi) - np.arctanh(lo)) / (2 * 1.959964), rel=0.2)
    assert lin_ccc(x, x.copy()) == (1.0, 1.0, 1.0)
    shifted, _, shifted_hi = lin_ccc(x, x + 5.0)
    assert shifted == pytest.approx(2 * x.var() / (2 * x.var() + 25.0)) and shifted_hi < 1
    assert stats.pearsonr(x, x + 5.0).statistic == pytest.approx(1.0)


def _reading(folder, lesion_slices: dict[str, int]) -> None:
    """Label maps of box lungs with a GGO block of the given number of 1 mm slices per case."""
    folder.mkdir()
    for case, slices in lesion_slices.items():
        labels = np.zeros((8, 16, 16), np.uint8)
        labels[:, 2:14, 2:14] = 1
        labels[:slices, 4:10, 4:10] = 2
        sitk.WriteImage(_image(labels), str(folder / f"{case}.nii.gz"))


def test_observer_study_is_laid_out_like_table_2(tmp_path, capsys):
    """Issue 17, item 7: readings O1a, O1b, O2, O3 and the software give software-vs-each,
    inter-observer and intra-observer columns in Table 2's order, with a CCC row; an O1b equal
    to O1a agrees perfectly; O2 reading one slice more has that bias."""
    o1a = {"a": 2, "b": 4, "c": 5, "d": 7}
    for name, slices in (("O1a", o1a), ("O1b", o1a), ("O2", {k: v + 1 for k, v in o1a.items()}),
                         ("O3", {"a": 3, "b": 3, "c": 6, "d": 6}), ("auto", {"a": 2, "b": 5, "c": 5, "d": 6})):
        _reading(tmp_path / name, slices)
    out = tmp_path / "table2"
    readings = [f"--observer={name}={tmp_path / name}" for name in ("O1a", "O1b", "O2", "O3")]
    assert main(["agreement", *readings, "--test", str(tmp_path / "auto"), "-o", str(out)]) == 0
    table = pd.read_csv(out / "table2.csv", index_col=0)
    assert list(table.columns) == ["auto vs. O1a", "auto vs. O1b", "auto vs. O2", "auto vs. O3", "O1a vs. O2", "O1a vs. O3",
                                   "O1b vs. O2", "O1b vs. O3", "O2 vs. O3", "O1a vs. O1b"]
    assert table.loc["comparison"].tolist() == ["software vs. observer"] * 4 + ["inter-observer"] * 5 + ["intra-observer"]
    assert table.loc["lesion_volume_cm3 CCC", "O1a vs. O1b"].startswith("1.000")
    summary = pd.read_csv(out / "summary.csv").set_index(["test_set", "measure"])
    assert summary.loc[("O1a vs. O2", "lesion_volume_cm3"), "bias"] == pytest.approx(6 * 6 / 1000)  # one 6 x 6 mm slice
    per_case = pd.read_csv(out / "per_case.csv").query("test_set == 'auto vs. O3'")
    ccc = lin_ccc(per_case["ref_lesion_extent_pct"].to_numpy(), per_case["test_lesion_extent_pct"].to_numpy())
    assert summary.loc[("auto vs. O3", "lesion_extent_pct"), "ccc"] == pytest.approx(ccc[0])
    assert per_case["ref_lesion_volume_cm3"].tolist() == pytest.approx([0.036 * 3, 0.036 * 3, 0.036 * 6, 0.036 * 6])  # O3 is the reference
    assert (out / "bland_altman_auto_vs_O1a_lesion_volume_cm3.png").exists()
    capsys.readouterr()
    assert main(["agreement", *readings[:1], "--reference", str(tmp_path / "O2"), "-o", str(tmp_path / "x")]) == 2
    assert "--observer replaces --reference" in capsys.readouterr().err
    assert main(["agreement", *readings[:1], "-o", str(tmp_path / "x")]) == 2
    assert "expected at least one --observer and two folders" in capsys.readouterr().err
