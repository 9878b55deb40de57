"""A second hostile battery (issue 27): bad inputs to ``risk fit``, ``risk predict`` and
``agreement``. Each must end in one line naming what was found and what was expected — never a
traceback, an "unexpected ValueError", or a wrong number with exit status 0. A refused
agreement case is listed with its reason while the other cases are compared (exit status 1).

The cohort is the SYNTHETIC one ``risk synthetic`` writes; the label maps are small box lungs."""
from __future__ import annotations

import gzip
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.studies.risk import EXTENT, FittedModel, ModellingStrategy, load_cohort

ERROR = "lunglesionquant: error: "


def run(capsys, *args) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of one command; nothing printed may be a traceback."""
    status = main([str(a) for a in args])
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    return status, printed.out, printed.err


def one_line_error(status: int, err: str, *expected: str) -> None:
    """Exit status 2 and a single line on stderr, not an unexpected error, holding each expected text."""
    assert status == 2, err
    assert err.startswith(ERROR) and err.strip().count("\n") == 0, err
    assert "unexpected" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"


# ----------------------------------------------------------------------------- risk fit
@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """The SYNTHETIC cohort as 'risk synthetic' writes it (300 patients), and its segment folder."""
    folder = tmp_path_factory.mktemp("synthetic")
    assert main(["risk", "synthetic", "--patients", "300", "--seed", "3", "-o", str(folder)]) == 0
    return pd.read_csv(folder / "SYNTHETIC_cohort.csv"), folder / "SYNTHETIC_segment"


def _with(column: str, rows: dict[int, object]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A damage: set ``column`` at the given 0-based data rows (spreadsheet row = index + 2)."""
    def damage(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})
        for row, value in rows.items():
            frame.loc[row, column] = value
        return frame
    return damage


def _units(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(AGE=frame["AGE"].astype(str) + " years")


def _renamed(old: str, new: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.rename(columns={old: new})


FIT = ["--id-column", "ID", "--outcome", "OUTCOME", "--bootstraps", "0"]
# (id, damage to the cohort table (None: as written), the command's other arguments, texts the error must hold)
FIT_CASES = [
    ("covariate twice", None, ["--covariates", "AGE", "AGE"], ["column 'AGE' is given as a covariate 2 times"]),
    ("outcome as covariate", None, ["--covariates", "AGE", "OUTCOME"], ["column 'OUTCOME' is given as the outcome and as a covariate"]),
    ("id as covariate", None, ["--covariates", "ID", "SEX"], ["column 'ID' is given as the id and as a covariate"]),
    ("score also a covariate", None, ["--covariates", "AGE", "CARDIAC", "--score", "CARDIAC"], ["'CARDIAC' is given as a covariate and as the score"]),
    ("extent also a covariate", lambda f: f.assign(**{EXTENT: 1.0}), ["--covariates", "AGE", EXTENT, "--extent-from", "SEGMENT"],
     [f"'{EXTENT}' is given as a covariate and as the extent from --extent-from"]),
    ("negative seed", None, ["--covariates", "AGE", "--seed", "-1"], ["seed -1: expected a whole number from 0 to 4294967295"]),
    ("seed too large", None, ["--covariates", "AGE", "--seed", str(2**32)], [f"seed {2**32}: expected a whole number from 0"]),
    ("age with units in two rows", _with("AGE", {3: "51 years", 7: "51 years"}), ["--covariates", "AGE", "SEX"],
     ["column 'AGE': '51 years' in rows 5, 9 is not a number"]),
    ("age with units in every row", _units, ["--covariates", "AGE", "SEX"], ["column 'AGE': ", "years' in rows", "not a number"]),
    ("decimal comma", _with("AGE", {4: "61,5"}), ["--covariates", "AGE"], ["column 'AGE': '61,5' in row 6 is not a number"]),
    ("text in a 0/1 column", _with("CARDIAC", {0: "yes", 9: "no"}), ["--covariates", "AGE", "CARDIAC"],
     ["column 'CARDIAC': 'yes' in row 2; 'no' in row 11 are not a number"]),
    ("age out of range", _with("AGE", {2: 250}), ["--covariates", "AGE"], ["column 'AGE' holds 250 in row 4; expected finite values within 0-120"]),
    ("infinite covariate", _with("CANCER", {5: "inf"}), ["--covariates", "AGE", "CANCER"], ["column 'CANCER' holds inf in row 7; expected finite values"]),
    ("id-like text covariate", lambda f: f.assign(NAME=[f"patient {i}" for i in range(len(f))]), ["--covariates", "AGE", "NAME"],
     ["column 'NAME': ", "different texts", "expected numbers, or categories"]),
    ("outcome 2", _with("OUTCOME", {2: 2}), ["--covariates", "AGE"], ["outcome 'OUTCOME': found 2 in row 4; expected binary 0/1"]),
    ("outcome yes/no", lambda f: f.assign(OUTCOME=f["OUTCOME"].map({0: "no", 1: "yes"})), ["--covariates", "AGE"],
     ["outcome 'OUTCOME': found '", "' in rows 2, ", "expected binary 0/1"]),
    ("outcome 0.5", _with("OUTCOME", {10: 0.5}), ["--covariates", "AGE"], ["outcome 'OUTCOME': found 0.5 in row 12"]),
    ("all one outcome", lambda f: f.assign(OUTCOME=1), ["--covariates", "AGE"], ["outcome 'OUTCOME': found only [1] in 300 rows"]),
    ("outcome never filled", lambda f: f.assign(OUTCOME=np.nan), ["--covariates", "AGE"], ["column(s) ['OUTCOME'] hold no value in any of the 300 rows"]),
    ("id column twice in the header", lambda f: f.assign(OTHER_ID=f["ID"]).rename(columns={"OTHER_ID": "ID"}), ["--covariates", "AGE"],
     ["column 'ID' appears 2 times in the header (columns [1, 11])"]),
    ("covariate twice in the header", _renamed("SEX", "AGE"), ["--covariates", "AGE"], ["column 'AGE' appears 2 times in the header"]),
    ("missing column", None, ["--covariates", "AGE", "BMI"], ["no column(s) ['BMI']; available: ['ID'"]),
    ("row without an id", _with("ID", {5: np.nan}), ["--covariates", "AGE"], ["column 'ID' (the ids) is empty in row 7"]),
    ("duplicated id", _with("ID", {1: "SYNTHETIC-00000"}), ["--covariates", "AGE"], ["id(s) ['SYNTHETIC-00000'] of 'ID' appear more than once"]),
    ("header without rows", lambda f: f.head(0), ["--covariates", "AGE"], ["a header but no rows"]),
    ("empty file", "", ["--covariates", "AGE"], ["could not be read as a CSV table"]),
    ("covariate that is the outcome", lambda f: f.assign(LEAK=f["OUTCOME"]), ["--covariates", "AGE", "LEAK"], ["perfect separation", "LEAK"]),
]


@pytest.mark.parametrize("damage, arguments, expected", [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES])
def test_risk_fit_refuses_in_one_line(cohort, tmp_path, capsys, damage, arguments, expected):
    frame, segment = cohort
    path = tmp_path / "cohort.csv"
    if isinstance(damage, str):
        path.write_text(damage)
    else:
        (damage(frame.copy()) if damage else frame).to_csv(path, index=False)
    arguments = [segment if a == "SEGMENT" else a for a in arguments]
    status, _, err = run(capsys, "risk", "fit", "--cohort", path, *FIT, *arguments, "-o", tmp_path / "out")
    one_line_error(status, err, *expected)
    assert not (tmp_path / "out" / "model.json").exists()


# ----------------------------------------------------------------------------- risk predict
@pytest.fixture(scope="module")
def model(cohort, tmp_path_factory) -> dict:
    """The JSON of model C (AGE bands, SEX, HYPERTENSION, the extent) as 'risk fit' writes it,
    developed here on the whole SYNTHETIC cohort by the fit's own strategy (without the split's
    evaluation, which takes most of a fit's time). Its outcome is written True/False: the misuse
    checks must leave such a table alone."""
    frame, segment = cohort
    path = tmp_path_factory.mktemp("model") / "cohort.csv"
    frame.assign(OUTCOME=frame["OUTCOME"].astype(bool)).to_csv(path, index=False)
    covariates = ["AGE", "SEX", "HYPERTENSION"]
    loaded, _ = load_cohort(path, "ID", "OUTCOME", covariates, extent_from=segment)
    fits, _ = ModellingStrategy("OUTCOME", covariates, extent=True).develop(loaded)
    codings, result = fits["C"]
    model = FittedModel("C", "OUTCOME", codings, list(result.params.index), result.params.tolist(), result.cov_params().to_numpy().tolist(),
                        len(loaded), int(loaded["OUTCOME"].sum()), 0, True)
    return json.loads(model.to_json())


PATIENT = ["AGE=70", "SEX=M", "HYPERTENSION=1", f"{EXTENT}=12"]


def _set(*path_and_value) -> Callable[[dict], None]:
    """A damage: the value at a key path of the model, e.g. _set("codings", 1, "kind", "weird")."""
    *keys, last, value = path_and_value

    def damage(data: dict) -> None:
        for key in keys:
            data = data[key]
        data[last] = value
    return damage


def _call(method: str, *keys_then_argument) -> Callable[[dict], None]:
    """A damage: call a list method (append, pop) of the value at a key path."""
    *keys, argument = keys_then_argument

    def damage(data: dict) -> None:
        for key in keys:
            data = data[key]
        getattr(data, method)(*([] if argument is None else [argument]))
    return damage


def _extra_term(data: dict) -> None:
    data["columns"].append("BMI")
    data["coefficients"].append(0.1)


def _not_symmetric(data: dict) -> None:
    data["covariance"][1][2] += 0.5


def _negative_variance(data: dict) -> None:
    data["covariance"][2][2] = -data["covariance"][2][2]


# (id, the model.json text, or a damage to its parsed JSON, texts the error must hold)
PREDICT_CASES = [
    ("invalid JSON", '{"name": "C", "outcome":', ["not valid JSON (Expecting value at line 1 column 25)"]),
    ("empty file", "", ["not valid JSON"]),
    ("not UTF-8", b"\xff\xfe\x00model", ["could not be read (UnicodeDecodeError"]),
    ("a list", "[1, 2]", ["the model is [1, 2]; expected a JSON object"]),
    ("no coefficients key", _call("pop", "coefficients"), ["the model lacks ['coefficients']; expected the keys"]),
    ("unknown key", _set("intercept", 1.0), ["the model has unknown ['intercept']"]),
    ("extra term", _extra_term, ["terms do not match the codings (unknown ['BMI'])"]),
    ("coefficient missing", _call("pop", "coefficients", None), ["5 coefficients; expected 6, one per term"]),
    ("coefficient extra", _call("append", "coefficients", 0.3), ["7 coefficients; expected 6"]),
    ("coefficient NaN", _set("coefficients", 2, math.nan), ["coefficient of 'AGE[>64]' is nan; expected a finite number"]),
    ("coefficient text", _set("coefficients", 1, "0.9"), ["coefficient of 'AGE[45-64]' is '0.9'"]),
    ("coefficient diverged", _set("coefficients", 4, 1e6), ["coefficient of 'HYPERTENSION' is 1000000.0", "within ±15"]),
    ("term renamed", _set("columns", 4, "DIABETES"), ["unknown ['DIABETES'], lacking ['HYPERTENSION']"]),
    ("covariance 5 x 5", lambda d: d.update(covariance=[row[:5] for row in d["covariance"][:5]]), ["covariance of 5 rows of lengths [5, 5, 5, 5, 5]; expected 6 x 6"]),
    ("covariance ragged", _call("pop", "covariance", 3, None), ["covariance of 6 rows of lengths [6, 6, 6, 5, 6, 6]"]),
    ("covariance a number", _set("covariance", 0.1), ["covariance of 0.1; expected 6 x 6"]),
    ("covariance infinite", _set("covariance", 0, 0, math.inf), ["covariance [0][0] (const, const) is inf; expected finite numbers"]),
    ("covariance not symmetric", _not_symmetric, ["covariance is not symmetric: [1][2]"]),
    ("covariance not positive semidefinite", _negative_variance, ["covariance is not positive semidefinite"]),
    ("coding of unknown kind", _set("codings", 2, "kind", "ordinal"), ["coding of 'HYPERTENSION': kind 'ordinal'; expected one of"]),
    ("coding without spread", _set("codings", 3, "sd", 0.0), [f"coding of '{EXTENT}': standard deviation 0.0; expected a positive number"]),
    ("coding levels as text", _set("codings", 1, "levels", "MF"), ["coding of 'SEX': levels 'MF'; expected a list of different texts"]),
    ("age bands edited", _set("codings", 0, "levels", ["18-44", "45-70", ">70"]), ["coding of 'AGE': levels", "expected the age bands"]),
    ("coding lacks its name", _call("pop", "codings", 2, "name"), ["a coding lacks ['name']"]),
    ("coding twice", lambda d: d["codings"].append(dict(d["codings"][2])), ["codings of ['HYPERTENSION'] given twice"]),
    ("patients as text", _set("n_train", "210"), ["n_train '210'; expected a whole number of patients"]),
    ("more events than patients", _set("events_train", 10_000), ["events_train 10000 above n_train"]),
    ("negative seed", _set("seed", -4), ["seed -4: expected a whole number from 0"]),
    ("events as a fraction", _set("events_train", 41.5), ["events_train 41.5; expected a whole number of patients"]),
    ("synthetic as text", _set("synthetic", "yes"), ["synthetic 'yes'; expected true or false"]),
]


@pytest.mark.parametrize("damage, expected", [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES])
def test_risk_predict_refuses_a_damaged_model_in_one_line(model, tmp_path, capsys, damage, expected):
    path = tmp_path / "model.json"
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    elif isinstance(damage, str):
        path.write_text(damage)
    else:
        data = json.loads(json.dumps(model))
        damage(data)
        path.write_text(json.dumps(data))
    status, out, err = run(capsys, "risk", "predict", "--model", path, "--patient", *PATIENT)
    one_line_error(status, err, f"{path}: not a model written by 'lunglesionquant risk fit'"
                   if not isinstance(damage, bytes) else f"{path}: could not be read", *expected)
    assert "probability" not in out


def test_risk_predict_uses_the_undamaged_model(model, tmp_path, capsys):
    assert [c["kind"] for c in model["codings"]] == ["age_bands", "categorical", "binary", "continuous"] and model["n_train"] == 300
    (tmp_path / "model.json").write_text(json.dumps(model))
    status, out, err = run(capsys, "risk", "predict", "--model", tmp_path / "model.json", "--patient", *PATIENT)
    assert status == 0 and out.startswith("Model C: probability of 'OUTCOME'"), err


def test_absent_model_and_bad_seed_for_the_synthetic_cohort(tmp_path, capsys):
    status, _, err = run(capsys, "risk", "predict", "--model", tmp_path / "absent.json", "--patient", *PATIENT)
    one_line_error(status, err, "absent.json: no such file")
    status, _, err = run(capsys, "risk", "synthetic", "--patients", "20", "--seed", "-2", "-o", tmp_path / "s")
    one_line_error(status, err, "seed -2: expected a whole number from 0")


# ----------------------------------------------------------------------------- agreement
def _labels(lesion_slices: int, shape=(6, 12, 12)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[:, 2:10, 2:10] = 1
    labels[:lesion_slices, 4:8, 4:8] = 2
    labels[-1, 3:5, 3:5] = 3
    return labels


def _write(array: np.ndarray, path: Path, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    image.SetOrigin(origin[: image.GetDimension()])
    sitk.WriteImage(image, str(path))


def _truncated(path: Path) -> None:
    _write(np.random.default_rng(0).integers(0, 4, (6, 12, 12)).astype(np.uint8), path)
    path.write_bytes(path.read_bytes()[:-60])


def _nan(suffix: str) -> Callable[[Path], Path]:
    def damage(path: Path) -> Path:
        array = _labels(3).astype(np.float32)
        array[2, 5, 5] = np.nan
        path.unlink()
        _write(array, path.with_name("b" + suffix))
        return path.with_name("b" + suffix)
    return damage


def _as(array: np.ndarray, **geometry) -> Callable[[Path], None]:
    return lambda path: _write(array, path, **geometry)


def _with_value(value: float, dtype) -> Callable[[Path], None]:
    array = _labels(3).astype(dtype)
    array[1, 1, 1] = value
    return _as(array)


def _truncated_nrrd(path: Path) -> Path:
    path.unlink()
    nrrd = path.with_name("b.nrrd")
    sitk.WriteImage(sitk.GetImageFromArray(_labels(3)), str(nrrd), False)
    nrrd.write_bytes(nrrd.read_bytes()[:-200])
    return nrrd


def _bad_segmentation(path: Path) -> Path:
    path.unlink()
    seg = path.with_name("b.seg.nrrd")
    seg.write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 12 12\nencoding: raw\n\n" + bytes(864))
    return seg


def _plain_segmentation(path: Path) -> Path:
    """A label map saved under a .seg.nrrd name: no segments to read."""
    path.unlink()
    sitk.WriteImage(sitk.GetImageFromArray(_labels(3)), str(path.with_name("b.seg.nrrd")))
    return path.with_name("b.seg.nrrd")


def _second_file(path: Path) -> None:
    _write(_labels(1), path.with_name("b.nrrd"))


def _rotated(path: Path) -> None:
    image = sitk.GetImageFromArray(_labels(3))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(path))


def _dangling_link(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.with_name("gone.nii.gz"))


def _rgb(path: Path) -> None:
    channel = sitk.GetImageFromArray(_labels(3))
    sitk.WriteImage(sitk.Compose(channel, channel, channel), str(path))


# (id, damage to the reader's b.nii.gz (may return the damaged file's new path), texts the refusal must hold)
AGREEMENT_CASES = [
    ("float NaN (NIfTI)", _nan(".nii.gz"), ["found 1 voxels that are NaN or infinite; expected a label map"]),
    ("float NaN (NRRD)", _nan(".nrrd"), ["found 1 voxels that are NaN or infinite; expected a label map"]),
    ("float infinity", _with_value(np.inf, np.float32), ["found 1 voxels that are NaN or infinite"]),
    ("label 7", _with_value(7, np.uint8), ["found values [7] besides 0-3; expected a label map"]),
    ("label -1", _with_value(-1, np.int16), ["found values [-1] besides 0-3"]),
    ("fraction 1.5", _with_value(1.5, np.float32), ["found values [1.5] besides 0-3"]),
    ("colour image", _rgb, ["3 values per voxel"]),
    ("truncated .nii.gz", _truncated, ["cut short", "expected a complete image file"]),
    ("truncated .nrrd", _truncated_nrrd, ["bytes of data; the header needs 864", "cut short"]),
    ("empty file", lambda p: p.write_bytes(b""), ["an empty file (0 bytes)"]),
    ("text file", lambda p: p.write_text("not an image"), ["damaged or cut short", "Not a gzipped file"]),
    ("damaged .seg.nrrd", _bad_segmentation, ["could not be read as a segmentation", "does not match dimension"]),
    (".seg.nrrd without segments", _plain_segmentation, ["holds none of the segments ['LungN', 'GGO', 'Cons']"]),
    ("fewer columns", _as(_labels(3, (6, 12, 10))), ["covers other voxels than the reference (10x12x6 voxels", "the reference's 12x12x6 voxels"]),
    ("fewer slices", _as(_labels(3, (5, 12, 12))), ["covers other voxels than the reference (12x12x5 voxels"]),
    ("other spacing", _as(_labels(3), spacing=(0.5, 0.5, 1.0)), ["on another voxel grid than the reference (12x12x6 voxels of 0.5x0.5x1 mm"]),
    ("half-voxel shift", _as(_labels(3), origin=(0.5, 0.0, 0.0)), ["on another voxel grid", "at (0.5, 0, 0)"]),
    ("two-voxel shift", _as(_labels(3), origin=(0.0, 2.0, 0.0)), ["covers other voxels than the reference"]),
    ("another place", _as(_labels(3), origin=(500.0, 0.0, 0.0)), ["its voxels do not overlap the reference's"]),
    ("2D against 3D", _as(_labels(3)[2]), ["a 2D label image against a 3D reference"]),
    ("rotated axes", _rotated, ["on another voxel grid than the reference", "; axes [0.866, -0.5, 0.0"]),
    ("a CT instead of labels", _as((_labels(3).astype(np.int16) * 300 - 1000)), ["found values [-1000, -700, -400, -100] besides 0-3"]),
    ("dangling link", _dangling_link, ["could not be read (No such file or directory)"]),
    ("two files for one case", _second_file, ["2 files for the case", "b.nii.gz", "b.nrrd"]),
]


@pytest.fixture(scope="module")
def readings(tmp_path_factory) -> Path:
    """A reference and a reader's reading of cases a and b, label maps on one 12 x 12 x 6 grid
    (two cases: the one left after a refusal is compared without the plots that take the time)."""
    folder = tmp_path_factory.mktemp("readings")
    for name, extra in (("ref", 0), ("obs", 1)):
        (folder / name).mkdir()
        for k, case in enumerate("ab"):
            _write(_labels(k + 1 + extra), folder / name / f"{case}.nii.gz")
    return folder


@pytest.mark.parametrize("damage, expected", [c[1:] for c in AGREEMENT_CASES], ids=[c[0] for c in AGREEMENT_CASES])
def test_agreement_refuses_the_case_and_compares_the_rest(readings, tmp_path, capsys, damage, expected):
    shutil.copytree(readings, tmp_path, dirs_exist_ok=True)
    damaged = damage(tmp_path / "obs" / "b.nii.gz")
    damaged = damaged if isinstance(damaged, Path) else tmp_path / "obs" / "b.nii.gz"
    status, out, err = run(capsys, "agreement", "--reference", tmp_path / "ref", "--test", tmp_path / "obs", "-o", tmp_path / "out")
    assert status == 1, out + err
    refused = [line for line in out.splitlines() if line.startswith("Failed: obs/b: ")]
    assert len(refused) == 1 and "unexpected" not in refused[0], out
    for text in expected:
        assert text in refused[0], f"{text!r} not in {refused[0]!r}"
    if "2 files" not in refused[0]:
        assert str(damaged) in refused[0]
    assert "1 case comparisons, 0 missing, 1 failed" in out
    assert pd.read_csv(tmp_path / "out" / "per_case.csv")["case"].tolist() == ["a"]


def test_a_damaged_reference_case_is_refused_in_every_comparison(readings, tmp_path, capsys):
    shutil.copytree(readings, tmp_path, dirs_exist_ok=True)
    shutil.copytree(tmp_path / "obs", tmp_path / "O2")
    with gzip.open(tmp_path / "ref" / "b.nii.gz", "rb") as stream:
        (tmp_path / "ref" / "b.nii.gz").write_bytes(gzip.compress(stream.read())[:-30])  # cut short
    status, out, _ = run(capsys, "agreement", "--observer", f"O1={tmp_path / 'ref'}", "--observer", f"O2={tmp_path / 'O2'}",
                         "--test", tmp_path / "obs", "-o", tmp_path / "out")
    assert status == 1
    refused = [line for line in out.splitlines() if line.startswith("Failed: ")]
    assert [line.split(":")[1] for line in refused] == [" obs vs. O1/b", " O1 vs. O2/b"], out
    assert all("b.nii.gz: could not be read to its end" in line for line in refused)


def test_grids_stored_otherwise_and_cropped_segmentations_are_compared_exactly(readings, tmp_path, capsys):
    """What the grid check must not refuse: the same voxels stored with flipped axes, and a
    .seg.nrrd cropped to its segments as Slicer saves it (padded with background)."""
    from LungLesionQuantLib.outputs.case_files import write_seg_nrrd
    from LungLesionQuantLib.labels import SEGMENTS

    shutil.copytree(readings, tmp_path, dirs_exist_ok=True)
    reference = sitk.ReadImage(str(tmp_path / "ref" / "a.nii.gz"))
    for case in "ab":
        shutil.copy(tmp_path / "ref" / f"{case}.nii.gz", tmp_path / "obs" / f"{case}.nii.gz")
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(reference)[:, :, ::-1].copy())  # the same voxels, x stored backwards
    flipped.SetSpacing(reference.GetSpacing())
    flipped.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    flipped.SetOrigin(reference.TransformIndexToPhysicalPoint((reference.GetSize()[0] - 1, 0, 0)))
    sitk.WriteImage(flipped, str(tmp_path / "obs" / "a.nii.gz"))
    (tmp_path / "obs" / "b.nii.gz").unlink()
    write_seg_nrrd(sitk.ReadImage(str(tmp_path / "ref" / "b.nii.gz"))[1:11, 1:11, :], SEGMENTS, tmp_path / "obs" / "b.seg.nrrd")
    status, out, err = run(capsys, "agreement", "--reference", tmp_path / "ref", "--test", tmp_path / "obs", "-o", tmp_path / "out")
    assert status == 0, out + err
    per_case = pd.read_csv(tmp_path / "out" / "per_case.csv").set_index("case")
    assert per_case.loc[["a", "b"], ["LungN_dice", "GGO_dice", "Cons_dice"]].to_numpy().tolist() == [[1.0] * 3] * 2
    assert per_case.loc[["a", "b"], "diff_lesion_volume_cm3"].tolist() == [0.0, 0.0]
