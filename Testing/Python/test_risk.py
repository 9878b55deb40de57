"""Risk models on the real clinical table and on a SYNTHETIC cohort drawn from known odds ratios."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from conftest import shared
from scipy import stats
from sklearn.metrics import roc_auc_score

from LungLesionQuantLib.cli import main
from LungLesionQuantLib.errors import InputError
from LungLesionQuantLib.studies.risk import (
    EXTENT,
    FittedModel,
    design,
    fit_study,
    load_cohort,
    write_study,
)
from LungLesionQuantLib.studies.stepwise import StepwiseRule
from LungLesionQuantLib.studies.synthetic_cohort import (
    MODEL_C,
    synthetic_cohort,
    write_synthetic,
)

COVARIATES = ["AGE", "SEX", "DIABETES TYPE II", "CHRONIC KIDNEY DISEASE", "CANCER"]


@pytest.fixture(scope="module")
def real_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("risk")
    cohort = shared("clinical/covid19_ar_patient_info.csv")
    assert main(["risk", "fit", "--cohort", str(cohort), "--id-column", "PATIENT_ID", "--outcome", "ICU Admit",
                 "--covariates", *COVARIATES, "-o", str(out)]) == 0
    return cohort, out


def test_real_table_c_statistic_is_sklearns_auc_on_the_written_predictions(real_fit):
    _, out = real_fit
    predictions = pd.read_csv(out / "predictions.csv")
    summary = json.loads((out / "summary.json").read_text())
    valid = predictions[predictions["split"] == "validation"]
    assert len(valid) == 32 and valid["outcome"].sum() == 9  # stratified 30 % of 104 patients, 29 events
    assert summary["models"]["A"]["c_statistic"] == pytest.approx(roc_auc_score(valid["outcome"], valid["predicted_probability"]))
    lo, hi = summary["models"]["A"]["c_statistic_ci"]
    assert lo < summary["models"]["A"]["c_statistic"] < hi
    assert any("events per parameter" in n for n in summary["notes"])
    assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_real_table_odds_ratios_equal_a_direct_statsmodels_fit(real_fit):
    cohort, out = real_fit
    table = pd.read_csv(cohort, dtype={"PATIENT_ID": str})
    train_ids = pd.read_csv(out / "predictions.csv", dtype={"PATIENT_ID": str}).query("split == 'train'")["PATIENT_ID"]
    train = table.set_index("PATIENT_ID").loc[train_ids]
    x = pd.DataFrame({"AGE[45-64]": ((train["AGE"] > 44) & (train["AGE"] <= 64)).astype(float),
                      "AGE[>64]": (train["AGE"] > 64).astype(float),
                      "SEX[M]": (train["SEX"] == "M").astype(float)})  # F is the most frequent level: reference
    for c in COVARIATES[2:]:
        x[c] = train[c].astype(float)
    direct = sm.Logit(train["ICU Admit"].astype(float), sm.add_constant(x)).fit(disp=0)
    ours = pd.read_csv(out / "odds_ratios.csv").set_index("term")
    for term in x.columns:
        assert ours.loc[term, "odds_ratio"] == pytest.approx(math.exp(direct.params[term]), rel=1e-6)
        assert ours.loc[term, "ci_low"] == pytest.approx(math.exp(direct.conf_int().loc[term, 0]), rel=1e-6)
    model = FittedModel.from_json((out / "model.json").read_text())
    patient = pd.DataFrame([{"AGE": 70, "SEX": "M", "DIABETES TYPE II": 1, "CHRONIC KIDNEY DISEASE": 0, "CANCER": 0}])
    p = model.predict(patient).iloc[0]
    row = pd.DataFrame([{"const": 1.0, "AGE[45-64]": 0.0, "AGE[>64]": 1.0, "SEX[M]": 1.0, "DIABETES TYPE II": 1.0,
                         "CHRONIC KIDNEY DISEASE": 0.0, "CANCER": 0.0}])
    assert p["probability"] == pytest.approx(float(direct.predict(row)[0]), rel=1e-6)
    assert p["ci_low"] < p["probability"] < p["ci_high"]


def test_synthetic_cohort_recovers_bartoli_model_c(tmp_path):
    frame = synthetic_cohort(8000, seed=1)
    covariates = ["AGE", "SEX", "HYPERTENSION", "DIABETES", "CANCER", "RESPIRATORY", "CARDIAC", "SYMPTOMS_GT7D"]
    study = fit_study(frame, "ID", "OUTCOME", covariates, synthetic=True, bootstraps=0)
    assert study.summary["synthetic"] is True
    c = study.odds_ratios.query("model == 'C'").set_index("term")
    inside95 = [c.loc[t, "ci_low"] <= true <= c.loc[t, "ci_high"] for t, true in MODEL_C.items()]
    assert sum(inside95) >= len(MODEL_C) - 1, c
    model = study.models["C"]
    se = np.sqrt(np.diag(model.covariance))
    for term, true in MODEL_C.items():  # every true log-OR within the 99.9 % interval
        k = model.columns.index(term)
        assert abs(model.coefficients[k] - math.log(true)) < 3.29 * se[k], term
    assert study.summary["models"]["C"]["c_statistic"] > study.summary["models"]["A"]["c_statistic"]


def test_lr_test_is_the_hand_computed_deviance_difference(tmp_path):
    cohort, measurements = write_synthetic(synthetic_cohort(1500, seed=2), tmp_path)
    loaded, _ = load_cohort(cohort, "ID", "OUTCOME", ["AGE", "SEX", "CANCER"], extent_from=measurements)
    study = fit_study(loaded, "ID", "OUTCOME", ["AGE", "SEX", "CANCER"], synthetic=True, bootstraps=0)
    train = loaded[study.predictions["split"].to_numpy() == "train"]
    xa = design(train, study.models["A"].codings)
    xc = design(train, study.models["C"].codings)
    llf_a = sm.Logit(train["OUTCOME"], xa).fit(disp=0).llf
    llf_c = sm.Logit(train["OUTCOME"], xc).fit(disp=0).llf
    lr = study.summary["models"]["C"]["lr_test_vs_A"]
    assert lr["lr"] == pytest.approx(2 * (llf_c - llf_a)) and lr["df"] == 1
    assert lr["p"] == pytest.approx(stats.chi2.sf(2 * (llf_c - llf_a), 1))
    assert {i["covariate"] for i in study.summary["models"]["C"]["interactions"]} == {"AGE", "SEX", "CANCER"}
    cut = study.summary["youden_extent"]
    assert 0 < cut["sensitivity"] <= 1 and 0 < cut["specificity"] <= 1 and cut["cutoff"] > 0


def test_bad_cohorts_get_clear_errors(tmp_path):
    cohort = shared("clinical/covid19_ar_patient_info.csv")
    with pytest.raises(InputError, match=r"no column\(s\) \['ICU admit'\]; available: \['PATIENT_ID'"):
        load_cohort(cohort, "PATIENT_ID", "ICU admit", ["AGE"])
    with pytest.raises(InputError, match="expected binary 0/1"):
        load_cohort(cohort, "PATIENT_ID", "AGE", ["SEX"])
    empty_out = tmp_path / "seg"
    empty_out.mkdir()
    pd.DataFrame({"case": ["x1", "x2"], EXTENT: [1.0, 2.0]}).to_csv(empty_out / "measurements.csv", index=False)
    with pytest.raises(InputError, match="none of the 104 ids"):
        load_cohort(cohort, "PATIENT_ID", "ICU Admit", ["AGE"], extent_from=empty_out)
    frame, _ = load_cohort(cohort, "PATIENT_ID", "ICU Admit", ["AGE", "HEMODIALYSIS Pre Diagnosis"])
    if frame["HEMODIALYSIS Pre Diagnosis"].nunique() == 1:
        with pytest.raises(InputError, match="constant"):
            fit_study(frame, "PATIENT_ID", "ICU Admit", ["AGE", "HEMODIALYSIS Pre Diagnosis"])
    frame, _ = load_cohort(cohort, "PATIENT_ID", "ICU Admit", ["AGE"])
    frame["LEAK"] = frame["ICU Admit"]  # a covariate that is the outcome: perfect separation
    with pytest.raises(InputError, match="perfect separation"):
        fit_study(frame, "PATIENT_ID", "ICU Admit", ["AGE", "LEAK"])


def test_some_ids_without_measurements_are_named(tmp_path):
    cohort, out = write_synthetic(synthetic_cohort(400, seed=3), tmp_path, measured=390)
    loaded, notes = load_cohort(cohort, "ID", "OUTCOME", ["AGE"], extent_from=out)
    assert len(loaded) == 390 and "10 of 400 ids match no measurement" in notes[0] and "SYNTHETIC-00399" in notes[0]


def test_predict_command_with_a_patients_measurements(real_fit, tmp_path, capsys):
    cohort, seg = write_synthetic(synthetic_cohort(2000, seed=4), tmp_path)
    out = tmp_path / "fit"
    assert main(["risk", "fit", "--cohort", str(cohort), "--id-column", "ID", "--outcome", "OUTCOME",
                 "--covariates", "AGE", "SEX", "--extent-from", str(seg), "--bootstraps", "5", "-o", str(out)]) == 0
    case = tmp_path / "case"
    case.mkdir()
    pd.DataFrame({"case": ["new"], EXTENT: [25.0]}).to_csv(case / "measurements.csv", index=False)
    capsys.readouterr()
    assert main(["risk", "predict", "--model", str(out / "model.json"), "--patient", "AGE=70", "SEX=M",
                 "--measurements", str(case / "measurements.csv")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Model C: probability of 'OUTCOME'") and "95 % CI" in printed
    assert main(["risk", "predict", "--model", str(out / "model.json"), "--patient", "AGE=70"]) == 2


def test_delong_comparison_agrees_with_a_paired_bootstrap():
    """Issue 17, item 1: DeLong's CI and p of the A-vs-C difference on the validation split of a
    SYNTHETIC cohort agree with a paired bootstrap of the same difference (2000 resamples)."""
    from LungLesionQuantLib.studies.roc_compare import delong_paired

    frame = synthetic_cohort(1500, seed=5)
    study = fit_study(frame, "ID", "OUTCOME", ["AGE", "SEX", "CANCER"], synthetic=True, bootstraps=0)
    valid = study.predictions[study.predictions["split"] == "validation"]
    y, a, c = valid["outcome"].to_numpy(), valid["probability_A"].to_numpy(), valid["probability_C"].to_numpy()
    reported = study.summary["c_statistic_comparisons"]["A vs C"]
    assert reported["auc_first"] == pytest.approx(roc_auc_score(y, a)) and reported["auc_second"] == pytest.approx(roc_auc_score(y, c))
    rng = np.random.default_rng(0)
    cases, controls = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    diffs = []
    for _ in range(2000):
        idx = np.concatenate([rng.choice(cases, cases.size), rng.choice(controls, controls.size)])
        diffs.append(_mann_whitney_auc(y[idx], c[idx]) - _mann_whitney_auc(y[idx], a[idx]))
    diffs = np.array(diffs)
    assert reported["difference"] > 0 and reported["p"] < 0.05  # the extent adds discrimination, as drawn
    assert np.std(diffs) == pytest.approx((reported["ci"][1] - reported["ci"][0]) / (2 * 1.959964), rel=0.15)
    assert np.percentile(diffs, 2.5) == pytest.approx(reported["ci"][0], abs=0.015)
    assert np.percentile(diffs, 97.5) == pytest.approx(reported["ci"][1], abs=0.015)
    same = delong_paired(y, a, a)
    assert same["difference"] == 0.0 and same["p"] == 1.0


def _mann_whitney_auc(y: np.ndarray, score: np.ndarray) -> float:
    """AUC as the Mann–Whitney U over cases × controls (midranks for ties): roc_auc_score's value
    without its per-call input checks, which would make 4,000 resamples take 30 s."""
    ranks = stats.rankdata(score)
    cases = y == 1
    m, n = cases.sum(), (~cases).sum()
    return float((ranks[cases].sum() - m * (m + 1) / 2) / (m * n))


def _delong_by_definition(y: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """DeLong et al. 1988 from its definition: the kernel psi over every case-control pair (ties
    1/2), structural components, their covariance; (difference, SE, two-sided p) of AUC2 - AUC1."""
    cases, controls = y == 1, y == 0
    components = []
    for score in (first, second):
        psi = (score[cases][:, None] > score[controls][None, :]) + 0.5 * (score[cases][:, None] == score[controls][None, :])
        components.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (auc1, v10a, v01a), (auc2, v10b, v01b) = components
    m, n = cases.sum(), controls.sum()
    var = (np.var(v10a, ddof=1) + np.var(v10b, ddof=1) - 2 * np.cov(v10a, v10b)[0, 1]) / m \
        + (np.var(v01a, ddof=1) + np.var(v01b, ddof=1) - 2 * np.cov(v01a, v01b)[0, 1]) / n
    se = math.sqrt(var)
    return auc2 - auc1, se, 2 * stats.norm.sf(abs((auc2 - auc1) / se))


def test_delong_written_by_risk_fit_matches_its_definition_on_its_predictions(tmp_path):
    """Issue 17's check: the A-vs-C DeLong p and CI in summary.json equal an independent
    computation from the tool's own predictions.csv, to 1e-6 (SYNTHETIC cohort)."""
    cohort, measurements = write_synthetic(synthetic_cohort(900, seed=11), tmp_path / "cohort")
    out = tmp_path / "risk"
    assert main(["risk", "fit", "--cohort", str(cohort), "--id-column", "ID", "--outcome", "OUTCOME", "--covariates", "AGE", "SEX",
                 "--extent-from", str(measurements), "--bootstraps", "0", "-o", str(out)]) == 0
    predictions = pd.read_csv(out / "predictions.csv")
    valid = predictions[predictions["split"] == "validation"]
    y = valid["outcome"].to_numpy()
    difference, se, p = _delong_by_definition(y, valid["probability_A"].to_numpy(), valid["probability_C"].to_numpy())
    reported = json.loads((out / "summary.json").read_text())["c_statistic_comparisons"]["A vs C"]
    assert reported["difference"] == pytest.approx(difference, abs=1e-6)
    assert reported["p"] == pytest.approx(p, abs=1e-6)
    assert reported["ci"] == pytest.approx([difference - 1.959964 * se, difference + 1.959964 * se], abs=1e-6)


def test_hosmer_lemeshow_and_decision_curve_by_hand(tmp_path):
    """Issue 17, items 4-5: Hosmer–Lemeshow tells true probabilities from halved ones; the net
    benefit at one threshold is recomputed by hand; the files are written."""
    from LungLesionQuantLib.studies.calibration_curves import decision_curve, hosmer_lemeshow

    rng = np.random.default_rng(7)
    p = rng.uniform(0.02, 0.9, 3000)
    y = rng.binomial(1, p)
    assert hosmer_lemeshow(y, p)["p"] > 0.001 and hosmer_lemeshow(y, p)["df"] == 8
    assert hosmer_lemeshow(y, p / 2)["p"] < 1e-6
    curve = decision_curve(y, {"X": p})
    row = curve[curve["threshold"] == 0.3].iloc[0]
    treated = p >= 0.3
    by_hand = ((treated & (y == 1)).sum() - (treated & (y == 0)).sum() * 0.3 / 0.7) / len(y)
    assert row["model_X"] == pytest.approx(by_hand) and row["treat_all"] == pytest.approx(y.mean() - (1 - y.mean()) * 0.3 / 0.7)
    study = fit_study(synthetic_cohort(1500, seed=5), "ID", "OUTCOME", ["AGE", "SEX", "CANCER"], synthetic=True, bootstraps=0)
    assert "hosmer_lemeshow_validation" in study.summary["models"]["C"]
    written = write_study(study, synthetic_cohort(1500, seed=5), tmp_path)
    for name in ("calibration.png", "decision_curve.png", "decision_curve.csv"):
        assert written[name].stat().st_size > 0
    assert {"threshold", "treat_all", "treat_none", "model_A", "model_C"} <= set(pd.read_csv(written["decision_curve.csv"]).columns)


def _two_covariate_cohort(n: int, seed: int, effect: float = 1.0) -> pd.DataFrame:
    """Generated patients: DRIVER moves the log-odds by ``effect`` per unit, NOISE and FLAG do not."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"ID": [f"P{i}" for i in range(n)], "DRIVER": rng.normal(0, 1, n), "NOISE": rng.normal(5, 2, n),
                          "FLAG": rng.binomial(1, 0.4, n)})
    frame["OUTCOME"] = rng.binomial(1, 1 / (1 + np.exp(-(-1.0 + effect * frame["DRIVER"]))))
    return frame


def test_optimism_correction_is_harrells_recipe_by_hand():
    """Issue 17, item 3: the corrected C-statistic and calibration slope equal Harrell's recipe
    computed here with statsmodels on the same bootstrap rows (the documented draw)."""
    frame = _two_covariate_cohort(160, seed=11, effect=0.8)
    study = fit_study(frame, "ID", "OUTCOME", ["DRIVER", "NOISE"], seed=3, bootstraps=25)
    iv = study.summary["models"]["A"]["internal_validation"]
    train = frame[study.predictions["split"].to_numpy() == "train"]
    y, x = train["OUTCOME"].to_numpy(), sm.add_constant(train[["DRIVER", "NOISE"]])
    apparent = roc_auc_score(y, sm.Logit(y, x).fit(disp=0).fittedvalues)
    rng = np.random.default_rng(3)
    c_optimism, slopes = [], []
    for _ in range(25):
        rows = rng.integers(0, len(train), len(train))
        fit = sm.Logit(y[rows], x.iloc[rows]).fit(disp=0)
        on_train = x.to_numpy() @ fit.params.to_numpy()
        c_optimism.append(roc_auc_score(y[rows], x.iloc[rows].to_numpy() @ fit.params.to_numpy()) - roc_auc_score(y, on_train))
        slopes.append(sm.Logit(y, sm.add_constant(on_train)).fit(disp=0).params[1])
    assert study.summary["internal_validation"]["replicates_used"] == 25
    assert iv["c_apparent"] == pytest.approx(apparent, rel=1e-9) == study.summary["models"]["A"]["c_statistic_train"]
    assert iv["c_corrected"] == pytest.approx(apparent - np.mean(c_optimism), rel=1e-9)
    assert iv["calibration_slope_corrected"] == pytest.approx(np.mean(slopes), rel=1e-6)
    assert iv["c_corrected"] < iv["c_apparent"] and iv["calibration_slope_corrected"] < 1  # a fitted model flatters itself


def test_stepwise_selection_keeps_the_driver_and_drops_noise(tmp_path, capsys):
    """Issue 17, item 2: on a generated cohort, backward by AIC keeps the covariate that drives the
    outcome and drops pure noise; its stopping rule holds when checked with statsmodels directly;
    the CLI states the rule and the steps, and refuses --select-by without --select."""
    frame = _two_covariate_cohort(1200, seed=12)
    study = fit_study(frame, "ID", "OUTCOME", ["NOISE", "DRIVER", "FLAG"], selection=StepwiseRule("backward"), bootstraps=0)
    chosen = study.summary["selection"]
    assert "DRIVER" in chosen["selected"] and "NOISE" in chosen["left_out"]
    assert study.summary["models"]["A"]["covariates"] == chosen["selected"]
    assert {s["covariate"] for s in chosen["steps"]} == set(chosen["left_out"])
    train = frame[study.predictions["split"].to_numpy() == "train"]

    def aic(names):
        return sm.Logit(train["OUTCOME"], sm.add_constant(train[names], has_constant="add")).fit(disp=0).aic

    final = aic(chosen["selected"])
    for name in chosen["selected"]:  # removing any kept covariate would not lower the AIC
        assert aic([n for n in chosen["selected"] if n != name]) >= final
    for step in chosen["steps"]:
        assert step["aic_after"] < step["aic_before"]
    cohort = tmp_path / "cohort.csv"
    frame.to_csv(cohort, index=False)
    capsys.readouterr()
    args = ["risk", "fit", "--cohort", str(cohort), "--id-column", "ID", "--outcome", "OUTCOME", "--covariates", "NOISE", "DRIVER", "FLAG"]
    assert main([*args, "--select", "forward", "--select-by", "p", "--select-p", "0.01", "--bootstraps", "5", "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "forward stepwise selection by p-value" in printed and "p is < 0.01" in printed and "step 1: added DRIVER" in printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["selection"]["p_threshold"] == 0.01 and summary["selection"]["steps"][0]["lr_p"] < 0.01
    assert all(s["lr_p"] < 0.01 for s in summary["selection"]["steps"]) and "NOISE" not in summary["selection"]["selected"]
    assert main([*args, "--select-by", "p", "-o", str(tmp_path / "refused")]) == 2
    assert "expected --select backward|forward" in capsys.readouterr().err


def test_nomogram_points_give_back_the_linear_predictor(tmp_path):
    """Issue 17, item 6: each patient's nomogram points, summed and mapped back, are the model's
    linear predictor; the widest covariate spans 0-100 points; the PNG and its table are written."""
    frame = synthetic_cohort(1500, seed=6)
    study = fit_study(frame, "ID", "OUTCOME", ["AGE", "SEX", "CANCER"], synthetic=True, bootstraps=0)
    nomogram, model = study.nomogram, study.models["C"]
    assert nomogram.model is model and study.summary["nomogram"]["model"] == "C"
    points = nomogram.points(frame)
    eta, _ = model.linear_predictor(frame)
    assert nomogram.linear_predictor(points["total"].to_numpy()) == pytest.approx(eta, abs=1e-9)
    assert nomogram.total_points(eta) == pytest.approx(points["total"].to_numpy(), abs=1e-7)
    written = write_study(study, frame, tmp_path)
    assert written["nomogram.png"].read_bytes()[:4] == b"\x89PNG"
    ticks = pd.read_csv(written["nomogram.csv"])
    spans = ticks.groupby("covariate")["points"].agg(["min", "max"])
    assert spans.loc[study.summary["nomogram"]["scaled_on"], "max"] == pytest.approx(100.0)
    assert (spans["min"].abs() < 1e-9).all() and (spans["max"] <= 100 + 1e-9).all()
    older = ticks.set_index(["covariate", "value"]).loc[("AGE", ">64"), "points"]
    assert older == pytest.approx(points.loc[frame["AGE"] > 64, "AGE"].iloc[0])


def test_bootstrap_auc_equals_scikit_learn_on_each_resample():
    """The counted bootstrap scores every resample as roc_auc_score would: the same draws, one by
    one through scikit-learn, give the same percentiles (ties included: scores rounded)."""
    from LungLesionQuantLib.studies.roc_compare import bootstrap_auc

    rng = np.random.default_rng(3)
    y = rng.binomial(1, 0.3, 180)
    score = np.round(rng.normal(y * 0.8, 1.0), 1)
    auc, lo, hi = bootstrap_auc(y, score, seed=9, n=300)
    draws = np.random.default_rng(9)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    neg = neg[np.argsort(score[neg], kind="stable")]  # the function draws controls in score order
    by_hand = []
    for start in range(0, 300, 250):
        size = min(250, 300 - start)
        cases, controls = draws.integers(0, pos.size, (size, pos.size)), draws.integers(0, neg.size, (size, neg.size))
        for a, b in zip(cases, controls):
            idx = np.concatenate([pos[a], neg[b]])
            by_hand.append(roc_auc_score(y[idx], score[idx]))
    assert auc == pytest.approx(roc_auc_score(y, score))
    assert [lo, hi] == pytest.approx(list(np.percentile(by_hand, [2.5, 97.5])), abs=1e-12)
