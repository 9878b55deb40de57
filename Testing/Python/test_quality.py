"""Quality flags in the table (issue 25): a case whose lungs are not (fully) in the scan keeps its
volumes but gets no extent, and its `quality` column says why; cohort report and risk say which
cases they set aside. Built from the sample CT (crops that keep only the lung bases, a 2-slice stack)."""
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.measurement.plausibility import lung_warnings
from LungLesionQuantLib.measurement.quality import QUALITY_OK, with_quality
from LungLesionQuantLib.runtime import QualityFlag
from LungLesionQuantLib.studies.risk import read_extents
from conftest import SAMPLE_CT


def _labels(lung_slices: int, shape=(40, 64, 64), spacing=(5.0, 5.0, 5.0)) -> sitk.Image:
    labels = np.zeros(shape, np.uint8)
    labels[:lung_slices, 12:52, 6:28] = 1
    labels[:lung_slices, 12:52, 36:58] = 2
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(spacing)
    return image


def test_flags_are_their_warning_text_and_survive_pickling():
    flag = QualityFlag("partial_lung", "lung volume 0.2 L is outside", True)
    assert flag == "lung volume 0.2 L is outside" and "0.2 L" in flag
    back = pickle.loads(pickle.dumps(flag))  # results come back from Dask workers pickled
    assert (back.code, back.withholds_extent, str(back)) == ("partial_lung", True, str(flag))


@pytest.mark.parametrize("lung_slices, codes, withheld", [
    (40, [], False),                      # two lungs of 8.8 L: nothing in doubt
    (3, ["partial_lung"], True),          # 0.66 L: the lungs are not in the scan
    (0, ["no_lung"], True),
])
def test_quality_column_and_withheld_extents(lung_slices, codes, withheld):
    flags = lung_warnings(_labels(lung_slices))
    assert [f.code for f in flags] == codes
    row = with_quality({"case": "c", "lung_volume_cm3": 100.0, "lesion_extent_pct": 5.0, "GGO_extent_pct": 4.0}, flags)
    assert row["quality"] == (";".join(codes) or QUALITY_OK)
    assert np.isnan(row["lesion_extent_pct"]) == withheld and np.isnan(row["GGO_extent_pct"]) == withheld
    assert row["lung_volume_cm3"] == 100.0  # what the image shows is kept


def test_a_two_slice_stack_is_flagged_not_measured_as_a_lung():
    """Issue 27: a 2 x 512 x 512 volume was measured as a lung with no warning."""
    flags = lung_warnings(_labels(2, shape=(2, 64, 64)))
    assert [f.code for f in flags] == ["too_few_slices"]


def test_a_scan_of_the_lung_bases_only_gets_no_extent_and_says_why(tmp_path, capsys):
    """A stand-in for an abdominal CT that reaches the lung bases: the sample CT's lowest slices."""
    image = sitk.ReadImage(str(SAMPLE_CT))
    lps = sitk.DICOMOrient(image, "LPS")
    bases = lps[:, :, : max(3, lps.GetSize()[2] // 6)]  # LPS: index 0 is the feet end
    sitk.WriteImage(bases, str(tmp_path / "bases.nii.gz"))
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "bases.nii.gz"), str(SAMPLE_CT), "-o", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "measurements.csv").set_index("case")
    assert "partial_lung" in table.loc["bases", "quality"] and np.isnan(table.loc["bases", "lesion_extent_pct"])
    assert table.loc["bases", "lung_volume_cm3"] > 0 and "extents left empty" in printed
    assert table.loc["ricord_000082_sample", "quality"] == QUALITY_OK
    assert table.loc["ricord_000082_sample", "lesion_extent_pct"] > 0
    assert "quality" in pd.read_csv(out / "bases" / "measurements.csv").columns
    assert json.loads((out / "cohort_report.json").read_text())["quality_flagged"] == {"bases": table.loc["bases", "quality"]}
    extents, quality = read_extents(out)
    assert np.isnan(extents["bases"]) and quality["bases"] == table.loc["bases", "quality"]
