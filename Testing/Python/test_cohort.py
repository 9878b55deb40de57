"""Cohorts on a real local Dask cluster (issue 16): same labels as a serial run, broken case
reported, --resume skips finished cases, a dying worker is replaced and its case retried."""
import json
import os
import shutil
import sys

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.cohort import case_task, segment_cohort
from LungLesionQuantLib.segmenters import SegmenterSpec
from LungLesionQuantLib.pipeline import CaseOptions, sha256
from conftest import SAMPLE_CT
from test_golden import GOLDEN_COUNTS

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault-injecting tasks below run on workers


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    for name in ("a", "b", "c"):
        shutil.copy(SAMPLE_CT, folder / f"{name}.nii.gz")
    (folder / "broken.nii.gz").write_text("not an image")
    return folder


def counts(path):
    return np.bincount(sitk.GetArrayFromImage(sitk.ReadImage(str(path))).ravel(), minlength=4).tolist()


def test_two_workers_match_a_serial_run_and_resume_skips(cohort, tmp_path, capsys):
    """Each case's labels equal the serial run's golden counts (test_golden holds them)."""
    inputs = sorted(str(p) for p in cohort.iterdir())
    assert main(["segment", *inputs, "-o", str(tmp_path / "dask"), "--device", "cpu", "--workers", "2"]) == 1
    printed = capsys.readouterr()
    assert "4 cases: 3 done, 1 failed" in printed.out and "FAILED  broken:" in printed.out
    assert "dashboard" in printed.err
    for case in ("a", "b", "c"):
        assert counts(tmp_path / "dask" / case / "labels.nii.gz") == GOLDEN_COUNTS
    report = json.loads((tmp_path / "dask" / "cohort_report.json").read_text())
    assert [f["case"] for f in report["failed"]] == ["broken"] and report["settings"]["workers"] == 2
    assert (tmp_path / "dask" / "cohort_report.png").stat().st_size > 0
    before = {case: sha256(tmp_path / "dask" / case / "labels.nii.gz") for case in ("a", "b", "c")}
    os.remove(tmp_path / "dask" / "b" / "overlay.png")  # an incomplete case is redone
    assert main(["segment", *inputs, "-o", str(tmp_path / "dask"), "--device", "cpu", "--workers", "2", "--resume"]) == 1
    out = capsys.readouterr().out
    assert "skipped a:" in out and "skipped c:" in out and "ok      b:" in out
    assert "4 cases: 1 done, 1 failed, 2 skipped as complete" in out
    assert {case: sha256(tmp_path / "dask" / case / "labels.nii.gz") for case in ("a", "c")} == {c: before[c] for c in ("a", "c")}
    assert pd.read_csv(tmp_path / "dask" / "measurements.csv")["case"].tolist() == ["a", "b", "c"]


def dies_once(case, path, out_root, spec, options):
    """Kill this worker process the first time it meets the case; do the case the next time."""
    marker = os.path.join(out_root, f".died-{case}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return case_task(case, path, out_root, spec, options)


def always_dies(case, path, out_root, spec, options):
    os._exit(1)


def test_a_dying_worker_is_replaced_and_its_case_retried_then_reported(cohort, tmp_path):
    from distributed import Client, LocalCluster

    spec = SegmenterSpec(device="cpu", threads=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        out = tmp_path / "retried"
        out.mkdir()
        batch = segment_cohort([cohort / "a.nii.gz"], out, spec, CaseOptions(), client, retries=2, task=dies_once)
        assert [r.case for r in batch.results] == ["a"] and not batch.failures
        assert counts(out / "a" / "labels.nii.gz") == GOLDEN_COUNTS
        batch = segment_cohort([cohort / "b.nii.gz"], tmp_path / "dead", spec, CaseOptions(), client, retries=1, task=always_dies)
        assert not batch.results and [f.case for f in batch.failures] == ["b"]
        assert "the worker died 2 times" in batch.failures[0].error
