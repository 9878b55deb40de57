"""`lunglesionquant segment` end to end on the bundled sample CT, a broken case, and reruns."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import slicerio

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.measurement.quantify import measure_image
from conftest import SAMPLE_CT

CASE = "ricord_000082_sample"


def test_writes_the_documented_layout(sample_run):
    case_dir = sample_run / CASE
    for name in ("labels.nii.gz", "segmentation.seg.nrrd", "measurements.csv", "overlay.png", "provenance.json"):
        assert (case_dir / name).stat().st_size > 0, name
    assert (case_dir / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(case_dir.glob(".*")), "temporary files left behind"


def test_label_map_is_on_the_input_grid_and_matches_the_segmentation(sample_run):
    ct = sitk.ReadImage(str(SAMPLE_CT))
    labels = sitk.ReadImage(str(sample_run / CASE / "labels.nii.gz"))
    assert labels.GetSize() == ct.GetSize()
    assert labels.GetOrigin() == pytest.approx(ct.GetOrigin(), abs=1e-3)
    assert labels.GetSpacing() == pytest.approx(ct.GetSpacing(), abs=1e-4)
    array = sitk.GetArrayFromImage(labels)
    assert set(np.unique(array)) <= {0, 1, 2, 3}
    seg = slicerio.read_segmentation(str(sample_run / CASE / "segmentation.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["LungN", "GGO", "Cons"]
    assert np.array_equal(seg["voxels"].transpose(2, 1, 0), array)


def test_measurements_agree_with_the_label_map_and_are_adult(sample_run):
    row = pd.read_csv(sample_run / CASE / "measurements.csv").iloc[0]
    expected = measure_image(sitk.ReadImage(str(sample_run / CASE / "labels.nii.gz")))
    for key, value in expected.items():  # Slicer's table writer keeps 6 significant digits
        assert row[key] == pytest.approx(value, rel=5e-6, nan_ok=True), key
    assert 3000 < row["lung_volume_cm3"] < 8000
    cohort = pd.read_csv(sample_run / "measurements.csv")
    assert cohort["case"].tolist() == [CASE]
    provenance = json.loads((sample_run / CASE / "provenance.json").read_text())
    assert set(provenance["models"]) == {"lung", "lesion", "type"}


def test_batch_reports_a_broken_case_and_finishes_the_others(tmp_path, capsys):
    broken = tmp_path / "broken.nii.gz"
    broken.write_text("this is not an image")
    grey = tmp_path / "grey.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((3, 8, 8), 100, np.uint8)), str(grey))
    out = tmp_path / "out"
    status = main(["segment", str(broken), str(SAMPLE_CT), str(grey), "-o", str(out), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "3 cases: 1 done, 2 failed" in printed
    assert "FAILED  broken: " in printed and "could not be read" in printed
    assert "FAILED  grey: " in printed and "expected a CT in HU" in printed
    assert (out / CASE / "segmentation.seg.nrrd").exists()
    assert not (out / "broken").exists()


def test_rerun_never_silently_replaces_an_edited_segmentation(sample_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    assert main(["segment", str(SAMPLE_CT), "-o", str(out), "--device", "cpu"]) == 1
    assert "already holds" in capsys.readouterr().out
    edited = out / CASE / "segmentation.seg.nrrd"
    edited.write_bytes(edited.read_bytes() + b" ")  # stands in for a Segment Editor save
    marker = edited.read_bytes()
    assert main(["segment", str(SAMPLE_CT), "-o", str(out), "--device", "cpu", "--overwrite"]) == 0
    backups = list((out / CASE).glob("segmentation.edited-*.seg.nrrd"))
    assert len(backups) == 1 and backups[0].read_bytes() == marker
    assert "kept as segmentation.edited-" in capsys.readouterr().out
    assert not list((out / CASE).glob("labels.edited-*")), "an untouched file needs no backup"


def test_provenance_carries_the_methods_paragraph(sample_run):
    """Issue 13: the methods paragraph names the version, input sizes and each model's checksum."""
    provenance = json.loads((sample_run / CASE / "provenance.json").read_text())
    methods = provenance["methods"]
    assert "LungLesionQuant" in methods and "192 px" in methods and "Bartoli" in methods
    for digest in provenance["models"].values():
        assert digest[:16] in methods


def test_resume_with_a_window_skips_a_finished_volume_but_redoes_a_slice_read_under_another(sample_run, tmp_path, capsys):
    """--window reads 8-bit slices only: a finished CT volume is skipped whatever window is given."""
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    assert main(["segment", str(SAMPLE_CT), "-o", str(out), "--device", "cpu", "--resume", "--window", "1500/-600"]) == 0
    assert f"skipped {CASE}" in capsys.readouterr().out
