"""Observer agreement over a cohort, shaped like Table 2 of Bartoli et al. 2022.

A reference folder and test folders, matched by case name (the layout ``segment`` writes,
or bare label-map / .seg.nrrd files). Per case: :func:`overlap.compare`. Per test set:
Dice mean ± SD per label; for GGO, Cons and lesion volume and extent the MAE ± SD, bias
(test − reference) ± SD with its paired p-value (paired t-test, or Wilcoxon signed-rank when
Shapiro–Wilk rejects normality of the differences at 0.05; both are reported), Pearson r,
ICC(2,1) (two-way random, absolute agreement, single rater; pingouin), Lin's concordance
correlation coefficient with its 95 % CI and a Bland–Altman plot. Several observers' readings
are paired as in the paper's Table 2 by :mod:`observers`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin
from scipy import stats
from statsmodels.graphics.agreement import mean_diff_plot

from ..outputs.atomic import atomic_path
from ..outputs.figures import new_figure, save_png
from ..errors import InputError, LungLesionQuantError
from ..input.imageio import SEGMENTATION_SUFFIX
from ..input.labelmaps import ambiguous_cases, case_files, read_label_image
from .overlap import EMPTY_RULE, LABEL_GROUPS, common_grid, compare

MEASURES = [f"{label}_{kind}" for kind in ("volume_cm3", "extent_pct") for label in ("GGO", "Cons", "lesion")]


@dataclass
class CohortComparison:
    per_case: pd.DataFrame
    missing: pd.DataFrame
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # test set -> kind of comparison (observer studies)


def compare_folders(reference: Path, tests: list[Path]) -> CohortComparison:
    """Compare every test folder with the reference, case by case; list cases found on one side only."""
    return compare_pairs([(name, reference, folder) for folder, name in zip(tests, set_names(tests))])


def compare_pairs(pairs: list[tuple[str, Path, Path]]) -> CohortComparison:
    """Compare each (set name, reference folder, test folder) pair case by case; list cases found
    on one side only. A case that cannot be compared (a damaged file, values other than labels,
    another voxel grid, two files for it) is refused with its reason and the others go on."""
    rows, missing, failures, warnings = [], [], [], []
    for name, reference, folder in pairs:
        ref_cases, test_cases = case_files(reference), case_files(folder)
        ambiguous = {**ambiguous_cases(folder), **ambiguous_cases(reference)}
        missing += [{"test_set": name, "case": c, "missing_from": "test"} for c in sorted(set(ref_cases) - set(test_cases))]
        missing += [{"test_set": name, "case": c, "missing_from": "reference"} for c in sorted(set(test_cases) - set(ref_cases))]
        for case in sorted(set(ref_cases) & set(test_cases)):
            try:
                if case in ambiguous:
                    raise InputError(f"{len(ambiguous[case])} files for the case ({', '.join(str(p) for p in ambiguous[case])}); "
                                     "expected one per case and folder")
                ref_image, w1 = read_label_image(ref_cases[case])
                test_image, w2 = read_label_image(test_cases[case])
                cropped = any(p.name.lower().endswith(SEGMENTATION_SUFFIX) for p in (ref_cases[case], test_cases[case]))
                ref_image, test_image = common_grid(ref_image, test_image, str(test_cases[case]), cropped)
                rows.append({"test_set": name, "case": case, **compare(ref_image, test_image, f"{name}/{case}")})
                warnings += [f"{name}/{case}: {w}" for w in w1 + w2]
            except Exception as exc:  # noqa: BLE001 — one broken case must not stop the study; it is reported
                why = str(exc) if isinstance(exc, LungLesionQuantError) else f"unexpected {type(exc).__name__}: {exc}"
                failures.append(f"{name}/{case}: {why}".splitlines()[0])
    return CohortComparison(pd.DataFrame(rows), pd.DataFrame(missing, columns=["test_set", "case", "missing_from"]), failures, warnings)


def set_names(tests: list[Path]) -> list[str]:
    """Each folder's name, numbered where two folders share one."""
    names = []
    for folder in tests:
        base = Path(folder).name or str(folder)
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def paired_statistics(reference: np.ndarray, test: np.ndarray) -> dict:
    """Agreement statistics of paired measures (NaN pairs dropped)."""
    keep = ~(np.isnan(reference) | np.isnan(test))
    ref, tst = reference[keep], test[keep]
    diff = tst - ref
    n = len(diff)
    out = {"n": n, "mae": np.nan, "mae_sd": np.nan, "bias": np.nan, "bias_sd": np.nan, "t_p": np.nan, "shapiro_p": np.nan,
           "wilcoxon_p": np.nan, "p": np.nan, "p_test": "", "pearson_r": np.nan, "pearson_p": np.nan,
           "icc": np.nan, "icc_ci_low": np.nan, "icc_ci_high": np.nan, "ccc": np.nan, "ccc_ci_low": np.nan, "ccc_ci_high": np.nan}
    if n == 0:
        return out
    out.update(mae=float(np.mean(np.abs(diff))), bias=float(np.mean(diff)))
    if n < 2:
        return out
    out.update(mae_sd=float(np.std(np.abs(diff), ddof=1)), bias_sd=float(np.std(diff, ddof=1)))
    if np.all(diff == 0):
        out.update(t_p=1.0, wilcoxon_p=1.0, p=1.0, p_test="no differences")
    else:
        out["t_p"] = float(stats.ttest_rel(tst, ref).pvalue)
        out["wilcoxon_p"] = float(stats.wilcoxon(tst, ref).pvalue)
        out["shapiro_p"] = float(stats.shapiro(diff).pvalue) if n >= 3 else np.nan
        non_normal = not math.isnan(out["shapiro_p"]) and out["shapiro_p"] < 0.05
        out["p"], out["p_test"] = (out["wilcoxon_p"], "Wilcoxon") if non_normal else (out["t_p"], "paired t")
    if n >= 3 and np.std(ref) > 0 and np.std(tst) > 0:
        r = stats.pearsonr(ref, tst)
        out.update(pearson_r=float(r.statistic), pearson_p=float(r.pvalue))
        long = pd.DataFrame({"case": np.tile(np.arange(n), 2), "rater": ["reference"] * n + ["test"] * n,
                             "value": np.concatenate([ref, tst])})
        table = pingouin.intraclass_corr(long, targets="case", raters="rater", ratings="value").set_index("Type")
        icc = table.loc["ICC(A,1)" if "ICC(A,1)" in table.index else "ICC2"]  # pingouin >= 0.6 / older names
        ci = icc["CI95" if "CI95" in icc.index else "CI95%"]
        out.update(icc=float(icc["ICC"]), icc_ci_low=float(ci[0]), icc_ci_high=float(ci[1]))
        out["ccc"], out["ccc_ci_low"], out["ccc_ci_high"] = lin_ccc(ref, tst)
    return out


def lin_ccc(reference: np.ndarray, test: np.ndarray) -> tuple[float, float, float]:
    """Lin's concordance correlation coefficient and its 95 % CI (Lin, Biometrics 1989).

    Agreement with the identity line: unlike Pearson's r it drops for a bias or a slope other
    than 1. ρc = 2 s_xy / (s_x² + s_y² + (x̄ − ȳ)²) with moments over n; the CI is Lin's
    asymptotic one on Fisher's z = atanh(ρc), n − 2 degrees of freedom. Not in scipy,
    statsmodels or pingouin; checked against its formula and a bootstrap in the tests.
    """
    x, y = np.asarray(reference, float), np.asarray(test, float)
    n = x.size
    sx2, sy2 = x.var(), y.var()
    sxy = float(np.mean((x - x.mean()) * (y - y.mean())))
    ccc = 2 * sxy / (sx2 + sy2 + (x.mean() - y.mean()) ** 2)
    if ccc >= 1.0 or n < 3:
        return float(ccc), float(ccc), float(ccc)  # identical readings: no spread to estimate
    r = sxy / math.sqrt(sx2 * sy2)
    u2 = (x.mean() - y.mean()) ** 2 / math.sqrt(sx2 * sy2)
    variance = ((1 - r**2) * ccc**2 / ((1 - ccc**2) * r**2) + 2 * ccc**3 * (1 - ccc) * u2 / (r * (1 - ccc**2) ** 2)
                - ccc**4 * u2**2 / (2 * r**2 * (1 - ccc**2) ** 2)) / (n - 2)
    z, half = math.atanh(ccc), 1.959964 * math.sqrt(max(variance, 0.0))
    return float(ccc), math.tanh(z - half), math.tanh(z + half)


def summarise(per_case: pd.DataFrame) -> pd.DataFrame:
    """One row per test set and measure: Dice rows, then volume/extent agreement rows."""
    rows = []
    for name, group in per_case.groupby("test_set", sort=False):
        for label in LABEL_GROUPS:
            dice = group[f"{label}_dice"].to_numpy(dtype=float)
            defined = dice[~np.isnan(dice)]
            rows.append({"test_set": name, "measure": f"{label} Dice", "n": len(defined),
                         "n_empty_both": int((group[f"{label}_status"] == "empty in both").sum()),
                         "mean": float(defined.mean()) if len(defined) else np.nan,
                         "sd": float(defined.std(ddof=1)) if len(defined) > 1 else np.nan})
        for measure in MEASURES:
            rows.append({"test_set": name, "measure": measure,
                         **paired_statistics(group[f"ref_{measure}"].to_numpy(float), group[f"test_{measure}"].to_numpy(float))})
    return pd.DataFrame(rows)


def table2(summary: pd.DataFrame, kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """The summary formatted like the paper's Table 2: measures × test sets (in their order),
    'mean (± SD)' cells; a first row 'comparison' gives each set's kind where ``kinds`` does."""
    def cell(r: pd.Series, mean: str, sd: str, digits: int) -> str:
        return "x" if pd.isna(r[mean]) else f"{r[mean]:.{digits}f} (± {r[sd]:.{digits}f})" if not pd.isna(r[sd]) else f"{r[mean]:.{digits}f}"

    lines = [{"test_set": name, "row": "comparison", "value": kind} for name, kind in (kinds or {}).items()]
    for _, r in summary.iterrows():
        if r["measure"].endswith("Dice"):
            lines.append({"test_set": r["test_set"], "row": r["measure"], "value": cell(r, "mean", "sd", 2)})
            continue
        digits = 1
        lines.append({"test_set": r["test_set"], "row": f"{r['measure']} MAE", "value": cell(r, "mae", "mae_sd", digits)})
        bias = cell(r, "bias", "bias_sd", digits) + ("" if pd.isna(r["p"]) else f"; p = {r['p']:.3g} ({r['p_test']})")
        lines.append({"test_set": r["test_set"], "row": f"{r['measure']} bias", "value": bias})
        lines.append({"test_set": r["test_set"], "row": f"{r['measure']} r", "value": "x" if pd.isna(r["pearson_r"]) else f"{r['pearson_r']:.3f}"})
        lines.append({"test_set": r["test_set"], "row": f"{r['measure']} ICC", "value": "x" if pd.isna(r["icc"]) else f"{r['icc']:.3f} [{r['icc_ci_low']:.2f}, {r['icc_ci_high']:.2f}]"})
        lines.append({"test_set": r["test_set"], "row": f"{r['measure']} CCC", "value": "x" if pd.isna(r["ccc"]) else f"{r['ccc']:.3f} [{r['ccc_ci_low']:.2f}, {r['ccc_ci_high']:.2f}]"})
    frame = pd.DataFrame(lines)
    table = frame.pivot(index="row", columns="test_set", values="value")
    return table.reindex(index=pd.unique(frame["row"]), columns=pd.unique(summary["test_set"]))


def bland_altman(reference: np.ndarray, test: np.ndarray, path: Path, title: str) -> Path | None:
    """A Bland–Altman plot (statsmodels): mean difference and 95 % limits of agreement."""
    keep = ~(np.isnan(reference) | np.isnan(test))
    if keep.sum() < 2:
        return None
    fig = new_figure(figsize=(6, 4.5))
    ax = fig.subplots()
    mean_diff_plot(test[keep], reference[keep], ax=ax)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("mean of test and reference")
    ax.set_ylabel("test − reference")
    save_png(fig, path)
    return path


def write_study(result: CohortComparison, out: Path) -> dict[str, Path]:
    """Write per_case.csv, summary.csv, table2.csv, missing.csv, notes.txt and the Bland–Altman PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    summary = summarise(result.per_case) if len(result.per_case) else pd.DataFrame()
    frames = {"per_case.csv": result.per_case, "summary.csv": summary, "missing.csv": result.missing}
    if len(summary):
        frames["table2.csv"] = table2(summary, result.kinds)
    for name, frame in frames.items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=name == "table2.csv")
        written[name] = out / name
    if len(result.per_case):
        for name, group in result.per_case.groupby("test_set", sort=False):
            file_name = re.sub(r"[^\w-]+", "_", name)  # 'auto vs. O1a' -> 'auto_vs_O1a'
            for measure in MEASURES:
                path = bland_altman(group[f"ref_{measure}"].to_numpy(float), group[f"test_{measure}"].to_numpy(float),
                                    out / f"bland_altman_{file_name}_{measure}.png", f"{name}: {measure.replace('_', ' ')}")
                if path:
                    written[path.name] = path
    notes = [EMPTY_RULE, "Bias = test − reference. p: Wilcoxon signed-rank when Shapiro–Wilk p < 0.05 on the differences, else paired t-test; both are in summary.csv.",
             "ICC: ICC(2,1), two-way random effects, absolute agreement, single rater (pingouin).",
             "CCC: Lin's concordance correlation coefficient, 95 % CI on Fisher's z (Lin, Biometrics 1989)."]
    if result.kinds:
        notes.append("Pairs 'A vs. B': software vs. observer compares the software (test) with the observer's reading (reference); "
                     "observer pairs take the first-named reading as the reference. Readings named alike but for a final letter "
                     "after a digit (O1a, O1b) are one observer's: intra-observer; other observer pairs are inter-observer.")
    notes += [f"Missing: {r.case} has no {r.missing_from} segmentation in set {r.test_set}" for r in result.missing.itertuples()]
    notes += [f"Failed: {f}" for f in result.failures] + [f"Warning: {w}" for w in result.warnings]
    with atomic_path(out / "notes.txt") as tmp:
        tmp.write_text("\n".join(notes) + "\n")
    written["notes.txt"] = out / "notes.txt"
    return written
