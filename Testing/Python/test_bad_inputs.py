"""Bad inputs and faults (issue 12): each is refused or handled in one line, never a wrong number
with exit status 0, a traceback, a file outside its case folder, a truncated file under its
final name, or an earlier result lost. Every case is built here from the sample CT, the
lung-cancer DICOM series and the clinical table."""
import gzip
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from LungLesionQuantLib.outputs.atomic import LOCK_FILE, CaseStage
from LungLesionQuantLib.cli import main
from LungLesionQuantLib.errors import InputError, OutputError
from LungLesionQuantLib.input.imageio import read_ct
from conftest import REPO, SAMPLE_CT, shared

CASE = "ricord_000082_sample"


def run(capsys, *args) -> tuple[int, str]:
    """Exit status and everything printed; asserts that nothing printed is a traceback."""
    status = main([str(a) for a in args])
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "Traceback" not in printed
    return status, printed


def refused(capsys, path: Path, tmp_path: Path, expected: str) -> None:
    status, printed = run(capsys, "segment", path, "-o", tmp_path / "out", "--device", "cpu")
    assert status == 1 and "0 done, 1 failed" in printed, printed
    assert expected in printed, printed
    assert not (tmp_path / "out" / "measurements.csv").exists()


@pytest.fixture(scope="module")
def sample_array():
    image = sitk.ReadImage(str(SAMPLE_CT))
    return image, sitk.GetArrayFromImage(image).astype(np.float32)


def write_like(array: np.ndarray, like: sitk.Image, path: Path) -> Path:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))
    return path


# ----------------------------------------------------------------------------- wrong numbers
def test_truncated_files_are_refused(tmp_path, capsys, sample_array):
    data = SAMPLE_CT.read_bytes()
    (tmp_path / "t.nii.gz").write_bytes(data[:len(data) // 2])
    refused(capsys, tmp_path / "t.nii.gz", tmp_path, "cut short")
    image, array = sample_array
    sitk.WriteImage(image, str(tmp_path / "plain.nii"))
    raw = (tmp_path / "plain.nii").read_bytes()
    (tmp_path / "p.nii").write_bytes(raw[:len(raw) // 2])
    refused(capsys, tmp_path / "p.nii", tmp_path, "cut short")
    sitk.WriteImage(image, str(tmp_path / "c.nrrd"), useCompression=True)
    raw = (tmp_path / "c.nrrd").read_bytes()
    (tmp_path / "c.nrrd").write_bytes(raw[:len(raw) // 2])
    refused(capsys, tmp_path / "c.nrrd", tmp_path, "cut short")


def test_non_finite_and_constant_volumes_are_refused(tmp_path, capsys, sample_array):
    image, array = sample_array
    patch = array.copy()
    patch[40:50, 50:100, 50:100] = np.nan
    for name in ("nan.nii.gz", "nan.nrrd"):  # ITK reads NIfTI NaN as 0: checked in the file itself
        refused(capsys, write_like(patch, image, tmp_path / name), tmp_path, "NaN or infinite")
    refused(capsys, write_like(np.full_like(array, np.inf), image, tmp_path / "inf.mha"), tmp_path, "NaN or infinite")
    refused(capsys, write_like(np.full_like(array, -1000.0), image, tmp_path / "air.nii.gz"), tmp_path, "nothing above -200 HU")


def test_bad_spacing_and_direction_are_refused(tmp_path, capsys, sample_array):
    image, array = sample_array
    sitk.WriteImage(image, str(tmp_path / "plain.nii"))
    raw = bytearray((tmp_path / "plain.nii").read_bytes())
    for name, index, value in (("zero.nii", 1, 0.0), ("negative.nii", 3, -3.0), ("nan.nii", 2, float("nan"))):
        edited = raw.copy()
        struct.pack_into("<f", edited, 76 + 4 * index, value)
        (tmp_path / name).write_bytes(edited)
        refused(capsys, tmp_path / name, tmp_path, "expected positive sizes")
    tiny = sitk.GetImageFromArray(array)
    tiny.SetSpacing((1.5, 1.5, 1e-9))
    sitk.WriteImage(tiny, str(tmp_path / "tiny.mhd"))
    refused(capsys, tmp_path / "tiny.mhd", tmp_path, "expected each between 0.1 and 20 mm")
    skewed = sitk.GetImageFromArray(array)
    skewed.SetDirection((1, 0, 0, 0.5, 1, 0, 0, 0, 1))
    sitk.WriteImage(skewed, str(tmp_path / "skewed.nrrd"))
    refused(capsys, tmp_path / "skewed.nrrd", tmp_path, "not a rotation")


def test_png_bit_depths_are_checked(tmp_path, capsys):
    grey = np.asarray(Image.open(shared("semiseg_train/images/3.jpg")).convert("L"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    refused(capsys, tmp_path / "sixteen.png", tmp_path, "more than 8 bits per pixel")
    Image.fromarray(grey > 128).save(tmp_path / "onebit.png")
    refused(capsys, tmp_path / "onebit.png", tmp_path, "1-bit")


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(shared("dicom/lung_pet_ct_dx_A0001"), folder)
    return folder


def test_dicom_series_with_a_gap_or_mixed_spacing_is_refused(series, tmp_path, capsys):
    gap = tmp_path / "gap"
    shutil.copytree(series, gap)
    (gap / "1-32.dcm").unlink()
    refused(capsys, gap, tmp_path, "found 10.00 mm between slices")
    for path in sorted(series.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        if ds.InstanceNumber > 40:
            position = [float(v) for v in ds.ImagePositionPatient]
            position[2] += 2.5 * (ds.InstanceNumber - 40)
            ds.ImagePositionPatient = position
            ds.save_as(path)
    refused(capsys, series, tmp_path, "expected equally spaced slices")


def test_dicom_series_with_a_broken_member_is_refused(series, tmp_path, capsys):
    data = (series / "1-32.dcm").read_bytes()
    (series / "1-32.dcm").write_bytes(data[:20000])
    refused(capsys, series, tmp_path, "1-32.dcm")
    (series / "1-32.dcm").write_bytes(data)
    ds = pydicom.dcmread(series / "1-32.dcm")
    del ds.PixelData
    ds.save_as(series / "1-32.dcm")
    refused(capsys, series, tmp_path, "1-32.dcm")


def test_dicom_duplicates_exact_dropped_different_refused(series, tmp_path, capsys):
    shutil.copy(series / "1-32.dcm", series / "1-32copy.dcm")
    status, printed = run(capsys, "segment", series, "-o", tmp_path / "first", "--device", "cpu")
    assert status == 0 and "1-32copy.dcm duplicates 1-32.dcm" in printed
    ds = pydicom.dcmread(series / "1-32copy.dcm")
    pixels = ds.pixel_array.copy()
    pixels[0, 0] += 5
    ds.PixelData = pixels.tobytes()
    ds.save_as(series / "1-32copy.dcm")
    refused(capsys, series, tmp_path, "different slices at the same position")


def test_risk_predict_checks_values(tmp_path, capsys):
    cohort = tmp_path / "cohort.csv"
    table = pd.read_csv(shared("clinical/covid19_ar_patient_info.csv"))
    table.to_csv(cohort, index=False)
    out = tmp_path / "risk"
    status, _ = run(capsys, "risk", "fit", "--cohort", cohort, "--id-column", "PATIENT_ID", "--outcome", "ICU Admit",
                    "--covariates", "AGE", "SEX", "DIABETES TYPE II", "-o", out)
    assert status == 0
    model = out / "model.json"
    for patient, expected in ((["AGE=500", "SEX=M", "DIABETES TYPE II=1"], "within 0-120"),
                              (["AGE=-3", "SEX=M", "DIABETES TYPE II=1"], "within 0-120"),
                              (["AGE=abc", "SEX=M", "DIABETES TYPE II=1"], "expected a finite number"),
                              (["AGE=nan", "SEX=M", "DIABETES TYPE II=1"], "expected a finite number"),
                              (["AGE=60", "SEX=M", "DIABETES TYPE II=7"], "expected 0 or 1")):
        status, printed = run(capsys, "risk", "predict", "--model", model, "--patient", *patient)
        assert status == 2 and expected in printed, printed
    for broken in ("", "{", '{"name": "A"}', "[1, 2]"):
        (tmp_path / "broken.json").write_text(broken)
        status, printed = run(capsys, "risk", "predict", "--model", tmp_path / "broken.json", "--patient", "AGE=60")
        assert status == 2 and "not a model written by" in printed
    status, printed = run(capsys, "risk", "predict", "--model", tmp_path / "absent.json", "--patient", "AGE=60")
    assert status == 2 and "no such file" in printed


def test_risk_predict_with_several_cases_needs_case(tmp_path, capsys):
    from LungLesionQuantLib.studies.risk import EXTENT, FittedModel, Coding

    model = FittedModel("C", "ICU", [Coding(EXTENT, "continuous", mean=10.0, sd=5.0)], ["const", EXTENT],
                        [-1.0, 0.5], [[0.1, 0.0], [0.0, 0.1]], 70, 20, 0)
    (tmp_path / "model.json").write_text(model.to_json())
    pd.DataFrame({"case": ["p1", "p2"], EXTENT: [5.0, 30.0]}).to_csv(tmp_path / "measurements.csv", index=False)
    args = ("risk", "predict", "--model", tmp_path / "model.json", "--measurements", tmp_path / "measurements.csv")
    status, printed = run(capsys, *args)
    assert status == 2 and "--case" in printed
    status, one = run(capsys, *args, "--case", "p2")
    status1, other = run(capsys, *args, "--case", "p1")
    assert status == status1 == 0 and one != other
    pd.DataFrame({"case": ["p1"], EXTENT: [250.0]}).to_csv(tmp_path / "measurements.csv", index=False)
    status, printed = run(capsys, *args)
    assert status == 2 and "expected 0-100 %" in printed


def test_risk_fit_refuses_duplicates_text_in_numbers_and_tiny_cohorts(tmp_path, capsys):
    table = pd.read_csv(shared("clinical/covid19_ar_patient_info.csv"))
    args = ("--id-column", "PATIENT_ID", "--outcome", "ICU Admit", "--covariates", "AGE", "SEX", "-o", tmp_path / "risk")
    pd.concat([table, table.head(2)]).to_csv(tmp_path / "dup.csv", index=False)
    status, printed = run(capsys, "risk", "fit", "--cohort", tmp_path / "dup.csv", *args)
    assert status == 2 and "appear more than once" in printed
    text = table.astype({"AGE": object})
    text.loc[3, "AGE"] = "51y"
    text.to_csv(tmp_path / "text.csv", index=False)
    status, printed = run(capsys, "risk", "fit", "--cohort", tmp_path / "text.csv", *args)
    assert status == 2 and "'51y'" in printed
    table.head(3).to_csv(tmp_path / "tiny.csv", index=False)
    status, printed = run(capsys, "risk", "fit", "--cohort", tmp_path / "tiny.csv", *args)
    assert status == 2 and "expected at least" in printed
    status, printed = run(capsys, "risk", "fit", "--cohort", tmp_path / "absent.csv", *args)
    assert status == 2 and "no such file" in printed


# ----------------------------------------------------------------------------- where results go
def test_case_names_that_leave_out_are_impossible(tmp_path, capsys):
    scans = tmp_path / "x" / "s"
    scans.mkdir(parents=True)
    shutil.copy(SAMPLE_CT, scans)
    out = tmp_path / "x" / "OUT"
    status, printed = run(capsys, "segment", scans / "..", "-o", out / "new", "--device", "cpu")
    assert status == 1
    assert not (out / "measurements.csv").exists()
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} <= {"new/cohort_report.png", "new/cohort_report.json"}
    long_name = tmp_path / ("a" * 245 + ".nii.gz")
    shutil.copy(SAMPLE_CT, long_name)
    status, printed = run(capsys, "segment", long_name, "-o", tmp_path / "o2", "--device", "cpu")
    assert status == 1 and "expected at most 200" in printed


def _limited_run(out: Path, limit_bytes: int, *extra: str) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "LungLesionQuantLib.cli", "segment", str(SAMPLE_CT), "-o", str(out),
                           "--device", "cpu", *extra], capture_output=True, text=True, preexec_fn=limit, cwd=REPO)


def test_a_failed_write_leaves_no_truncated_file_and_keeps_earlier_results(tmp_path, sample_run):
    out = tmp_path / "out"
    short = _limited_run(out, 40 * 1024)
    assert short.returncode == 1 and "produced a damaged file" in short.stdout
    assert "Traceback" not in short.stdout + short.stderr
    assert not list(out.rglob("*.nii.gz")) and not list(out.rglob("*.seg.nrrd"))
    shutil.copytree(sample_run, out, dirs_exist_ok=True)
    case = out / CASE
    before = {p.name: p.read_bytes() for p in case.iterdir()}
    again = _limited_run(out, 300 * 1024, "--overwrite")  # the labels fit, the segmentation does not
    assert again.returncode == 1
    assert {p.name: p.read_bytes() for p in case.iterdir()} == before
    for path in case.glob("*.gz"):
        with gzip.open(path) as f:
            f.read()


def test_one_run_per_case_folder_and_dead_runs_cleared(tmp_path, capsys):
    case = tmp_path / "out" / CASE
    with CaseStage(case):
        with pytest.raises(OutputError, match="is being written by process"):
            CaseStage(case).__enter__()
        status, printed = run(capsys, "segment", SAMPLE_CT, "-o", tmp_path / "out", "--device", "cpu")
        assert status == 1 and "one run per case folder" in printed
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    case.mkdir(parents=True, exist_ok=True)  # the failed run above left no folder behind
    (case / LOCK_FILE).write_text(f"{dead.stdout.strip()} {os.uname().nodename}\n")
    (case / f".staging-{dead.stdout.strip()}").mkdir()
    (case / ".labels_partial1.nii.gz").write_bytes(b"")
    status, printed = run(capsys, "segment", SAMPLE_CT, "-o", tmp_path / "out", "--device", "cpu")
    assert status == 0
    assert sorted(p.name for p in case.iterdir() if p.name.startswith(".")) == []


def test_resume_clears_what_a_killed_run_left_and_a_damaged_case_table_costs_no_other_case(tmp_path, capsys, sample_run):
    """Issue 27: after kill -9 during --overwrite, --resume left .staging-<pid> and a stale lock; another
    case's damaged measurements.csv ended the run in "unexpected UnicodeDecodeError" with this case untabled."""
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (out / CASE / LOCK_FILE).write_text(f"{dead} {os.uname().nodename}\n")
    (out / CASE / f".staging-{dead}").mkdir()
    (out / CASE / f".staging-{dead}" / "labels.nii.gz").write_bytes(b"half")
    shutil.copytree(out / CASE, out / "other")
    (out / "other" / "measurements.csv").write_bytes(b"\xff\xfe\x00garbage\x81")
    status, printed = run(capsys, "segment", SAMPLE_CT, "-o", out, "--device", "cpu", "--resume")
    assert status == 0 and f"skipped {CASE}" in printed
    assert [p.name for p in (out / CASE).iterdir() if p.name.startswith(".")] == []
    assert "other/measurements.csv left out of the cohort table" in printed and "Traceback" not in printed
    table = pd.read_csv(out / "measurements.csv")
    assert table["case"].tolist() == [CASE]
    assert json.loads((out / "cohort_report.json").read_text())["left_out_of_table"]


def test_corrupt_provenance_keeps_earlier_files_as_backups(tmp_path, capsys, sample_run):
    out = tmp_path / "out"
    shutil.copytree(sample_run, out)
    (out / CASE / "provenance.json").write_text("{not json")
    status, printed = run(capsys, "segment", SAMPLE_CT, "-o", out, "--device", "cpu", "--overwrite")
    assert status == 0 and "kept as labels.edited-" in printed
    assert len(list((out / CASE).glob("*.edited-*"))) == 2
    json.loads((out / CASE / "provenance.json").read_text())


# ----------------------------------------------------------------------------- one line, not a traceback
def test_one_line_errors(tmp_path, capsys):
    models = tmp_path / "models"
    shutil.copytree(REPO / "Resources" / "Models", models)
    (models / "lesion.onnx").write_bytes((models / "lesion.onnx").read_bytes()[:1000])
    status, printed = run(capsys, "segment", SAMPLE_CT, "-o", tmp_path / "o", "--models", models)
    assert status == 2 and "could not be loaded" in printed
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for args in (("segment", SAMPLE_CT), ("agreement", "--reference", tmp_path, "--test", tmp_path),
                 ("evaluate", "--images", tmp_path, "--labels", tmp_path),
                 ("risk", "fit", "--cohort", a_file, "--id-column", "a", "--outcome", "b", "--covariates", "c")):
        status, printed = run(capsys, *args, "-o", a_file)
        assert status == 2 and "is a file; expected an output folder" in printed
    batch = subprocess.run([sys.executable, str(REPO / "LungLesionQuantLib" / "batch.py"), "--",
                            "--input-dir", str(tmp_path / "absent"), "--output", str(tmp_path / "b")], capture_output=True, text=True)
    assert batch.returncode == 2 and "not a folder" in batch.stderr and "Traceback" not in batch.stderr


def test_ctrl_c_keeps_what_finished_and_exits_130(tmp_path):
    """SIGINT while the second of three cases runs: the first is kept and tabled, exit 130."""
    inputs = []
    for name in ("a", "b", "c"):
        shutil.copy(SAMPLE_CT, tmp_path / f"{name}.nii.gz")
        inputs.append(str(tmp_path / f"{name}.nii.gz"))
    code = ("import signal, sys, threading, os\n"
            "from LungLesionQuantLib import pipeline\n"
            "from LungLesionQuantLib.cli import main\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal; a background job starts with SIGINT ignored\n"
            "original = pipeline.segment_case\n"
            "def interrupting(path, *a, **k):\n"
            "    if path.name.startswith('b'):\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "    return original(path, *a, **k)\n"
            "pipeline.segment_case = interrupting\n"
            f"sys.exit(main(['segment', *{inputs!r}, '-o', {str(tmp_path / 'out')!r}, '--device', 'cpu']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "not done" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert pd.read_csv(tmp_path / "out" / "measurements.csv")["case"].tolist() == ["a"]
    assert not (tmp_path / "out" / "b").exists()


def _series_copy(tmp_path, name="series", count=12):
    """``count`` consecutive slices of the RICORD series (JPEG-lossless as published), as pydicom datasets."""
    files = sorted(shared("dicom/ricord_1a_000082").rglob("*.dcm"))
    datasets = sorted((pydicom.dcmread(f) for f in files), key=lambda ds: float(ds.ImagePositionPatient[2]))[100:100 + count]
    folder = tmp_path / name
    folder.mkdir()
    return folder, datasets


def _as_screenshot(datasets: list) -> None:
    """A secondary-capture screenshot labelled CT: the slices' grey levels as RGB."""
    for ds in datasets:
        hu = sitk.GetArrayFromImage(sitk.ReadImage(ds.filename))[0].astype(np.float32)  # JPEG lossless: decoded by GDCM
        grey = np.clip((hu + 1000) / 1500 * 255, 0, 255).astype(np.uint8)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.PixelData = np.repeat(grey[..., None], 3, axis=-1).tobytes()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0


@pytest.mark.parametrize("damage, message", [
    (lambda dss: dss[3].__delattr__("ImagePositionPatient"), "no ImagePositionPatient .* in 1 of 12"),
    (lambda dss: [ds.__delattr__("PixelSpacing") for ds in dss], "no PixelSpacing .* in 12 of 12"),
    (lambda dss: [setattr(ds, "GantryDetectorTilt", 25.0) for ds in dss], "gantry tilt of 25"),
    (lambda dss: [setattr(ds, "PhotometricInterpretation", "MONOCHROME1") for ds in dss], "MONOCHROME1"),
    (lambda dss: [setattr(ds, "ImagePositionPatient", [float(ds.ImagePositionPatient[0]) + 0.4 * i, *ds.ImagePositionPatient[1:]])
                  for i, ds in enumerate(dss)], "step 17.7° off their normal"),
    (_as_screenshot, "stored as RGB with 3 samples per pixel"),
], ids=["no-position-in-one-slice", "no-pixel-spacing", "gantry-tilt", "monochrome1", "sheared-without-tilt-tag", "rgb-secondary-capture"])
def test_dicom_geometry_the_reader_would_fill_in_silently_is_refused_by_name(tmp_path, damage, message):
    """Issue 27: never a silent default for geometry (each once gave a wrong volume with exit 0)."""
    folder, datasets = _series_copy(tmp_path)
    damage(datasets)
    for i, ds in enumerate(datasets):
        ds.save_as(folder / f"{i:03d}.dcm")
    with pytest.raises(InputError, match=message):
        read_ct(folder)


def _enhanced(datasets: list, path: Path, damage=None) -> Path:
    """The slices as one Enhanced (multi-frame) CT file, its geometry in functional groups."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    enhanced = LegacyConvertedEnhancedCTImage(datasets, series_instance_uid=pydicom.uid.generate_uid(), series_number=99,
                                              sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1)
    if damage:
        damage(enhanced)
    enhanced.save_as(path)
    return path


def test_an_enhanced_multi_frame_ct_reads_as_its_classic_series(tmp_path):
    """Issue 27: an Enhanced CT raised; its voxels and geometry must be those of the classic series."""
    folder, datasets = _series_copy(tmp_path)
    for i, ds in enumerate(datasets):
        ds.save_as(folder / f"{i:03d}.dcm")
    classic = read_ct(folder)
    shuffled = [datasets[i] for i in (5, 0, 11, 3, 1, 2, 4, 6, 7, 10, 9, 8)]  # frames in any order are placed by position
    (tmp_path / "enhanced").mkdir()
    for path in (_enhanced(shuffled, tmp_path / "enhanced.dcm"), _enhanced(datasets, tmp_path / "enhanced" / "ct.dcm").parent):
        loaded = read_ct(path)
        assert loaded.note.startswith("Enhanced CT, 12 frames")
        for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
            assert np.allclose(getattr(loaded.image, get)(), getattr(classic.image, get)(), atol=1e-4), get
        assert np.array_equal(sitk.GetArrayFromImage(loaded.image), sitk.GetArrayFromImage(classic.image))


def _drop_position(enhanced) -> None:
    del enhanced.PerFrameFunctionalGroupsSequence[4].PlanePositionSequence


def _shear(enhanced) -> None:
    for i, frame in enumerate(enhanced.PerFrameFunctionalGroupsSequence):
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        frame.PlanePositionSequence[0].ImagePositionPatient = [float(position[0]), float(position[1]) + 0.5 * i, float(position[2])]


@pytest.mark.parametrize("damage, message", [
    (_drop_position, "no ImagePositionPatient in the PlanePositionSequence of 1 of 12 frame"),
    (_shear, "off their normal"),
    (lambda e: e.SharedFunctionalGroupsSequence[0].__delattr__("PixelMeasuresSequence"), "no PixelSpacing in the PixelMeasuresSequence"),
], ids=["frame-without-position", "sheared-frames", "no-pixel-measures"])
def test_an_enhanced_ct_with_missing_or_sheared_geometry_is_refused(tmp_path, damage, message):
    _, datasets = _series_copy(tmp_path)
    with pytest.raises(InputError, match=message):
        read_ct(_enhanced(datasets, tmp_path / "enhanced.dcm", damage))


def test_a_series_split_over_subfolders_is_one_series_and_symlink_loops_end(tmp_path):
    folder, datasets = _series_copy(tmp_path)
    for i, ds in enumerate(datasets):
        part = folder / ("a" if i % 2 else "b")
        part.mkdir(exist_ok=True)
        ds.save_as(part / f"{i:03d}.dcm")
    (folder / "a" / "loop").symlink_to(folder, target_is_directory=True)
    loaded = read_ct(folder)
    assert loaded.image.GetSize()[2] == 12 and len(loaded.dicom_files) == 12
    positions = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    assert loaded.image.GetSpacing()[2] == pytest.approx(abs(positions[1] - positions[0]), abs=1e-3)


def test_an_alpha_channel_that_hides_nothing_is_dropped_and_one_that_does_is_refused(tmp_path):
    """Issue 27: a grey+alpha PNG was refused as colour."""
    grey = np.asarray(Image.open(shared("semiseg_train/images/1.jpg")).convert("L"))
    plain = read_ct(_save(Image.fromarray(grey), tmp_path / "plain.png"))
    for mode in ("LA", "RGBA"):
        opaque = Image.fromarray(grey).convert(mode)
        loaded = read_ct(_save(opaque, tmp_path / f"opaque_{mode}.png"))
        assert np.array_equal(sitk.GetArrayFromImage(loaded.image), sitk.GetArrayFromImage(plain.image)), mode
        seen_through = np.dstack([grey] * (3 if mode == "RGBA" else 1) + [np.where(np.arange(grey.shape[1]) < 50, 0, 255).astype(np.uint8)[None].repeat(grey.shape[0], 0)])
        with pytest.raises(InputError, match="transparency"):
            read_ct(_save(Image.fromarray(seen_through, mode), tmp_path / f"transparent_{mode}.png"))


def _save(image, path):
    image.save(path)
    return path


def test_more_workers_than_cores_and_a_malformed_scheduler_are_refused_up_front(tmp_path, capsys):
    """Issue 27: --workers 64 on 2 cores ran for minutes into KilledWorker; a malformed address raised."""
    code, out = run(capsys, "segment", str(SAMPLE_CT), "-o", str(tmp_path / "w"), "--workers", str((os.cpu_count() or 1) + 1))
    assert code == 2 and "--workers" in out and "expected at most" in out and not (tmp_path / "w" / CASE).exists()
    code, out = run(capsys, "segment", str(SAMPLE_CT), "-o", str(tmp_path / "s"), "--scheduler", "tcp://not a host::x")
    assert code == 2 and "scheduler" in out and "Traceback" not in out
