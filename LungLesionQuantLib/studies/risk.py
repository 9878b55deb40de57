"""Risk models of an adverse outcome, after Bartoli et al. 2022 (Table 3) and Tang et al. 2020.

Model A: clinical covariates (all, or those kept by stepwise selection: :mod:`stepwise`);
Model B: A + a radiologist's score (``--score``); Model C: A + the automatic lesion extent (from
``segment``'s measurements). Fitted with statsmodels on a seeded, outcome-stratified 70 %
training split; discrimination (C-statistic with a percentile-bootstrap 95 % CI, 2000
stratified resamples) on the 30 % validation split, and Harrell's bootstrap optimism correction
on the training split (:mod:`internal_validation`).

Coding (fitted on the training split and stored in the model JSON, never pickled):
- a covariate named ``age`` (any case) holding numbers: the paper's bands 18–44 (reference),
  45–64, > 64 (ages under 18 fall in the first band, with a warning);
- 0/1 (or True/False) columns: binary;
- other numeric columns, the score and the extent: standardized (mean 0, SD 1), OR per SD;
- text columns: categories, dummy-coded against the most frequent level (ties: first in order).
"""
from __future__ import annotations

import functools
import json
import math
import numbers
import re
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

from ..outputs.atomic import atomic_path
from .calibration_curves import (
    decision_curve,
    hosmer_lemeshow,
    plot_calibration,
    plot_decision_curve,
)
from ..errors import InputError
from ..measurement.quality import QUALITY_OK, quality_of
from ..outputs.figures import new_figure, save_png
from .internal_validation import BOOTSTRAPS, optimism_corrected
from .nomogram import Nomogram, build_nomogram, plot_nomogram
from .roc_compare import bootstrap_auc, delong_paired
from .stepwise import StepwiseRule, lr_test, select_covariates

EXTENT = "lesion_extent_pct"
RADIOGRAPH_EXTENT = "opacity_pct"
AGE_BANDS = (("18-44", -math.inf, 44.0), ("45-64", 44.0, 64.0), (">64", 64.0, math.inf))
MIN_EVENTS_PER_PARAMETER = 10
# Fewer patients with (or without) the outcome leave a 70/30 split without both on each side.
MIN_PER_OUTCOME = 5
# A coefficient beyond this on the logit scale (an odds ratio over 3 million) means separation, not an effect:
# 'risk fit' refuses such a fit, and a model file holding one is refused too.
MAX_LOGIT = 15.0
# Seeds numpy's and scikit-learn's generators accept.
SEED_RANGE = (0, 2**32 - 1)
CODING_KINDS = ("binary", "continuous", "categorical", "age_bands")


@dataclass
class Coding:
    """How one input column becomes model columns."""

    name: str
    kind: str  # "binary", "continuous", "categorical", "age_bands"
    levels: list[str] = field(default_factory=list)  # reference level first
    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        """Refuse a coding that could only give wrong numbers: codings come from a fit or from a
        model file a person may have edited, and both pass here."""
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"a coding's name is {self.name!r}; expected a column name")
        what = f"coding of '{self.name}'"
        if self.kind not in CODING_KINDS:
            raise InputError(f"{what}: kind {self.kind!r}; expected one of {list(CODING_KINDS)}")
        if not isinstance(self.levels, list) or not all(isinstance(lv, str) for lv in self.levels) or len(set(self.levels)) != len(self.levels):
            raise InputError(f"{what}: levels {self.levels!r}; expected a list of different texts")
        if self.kind == "categorical" and len(self.levels) < 2:
            raise InputError(f"{what}: levels {self.levels}; expected the reference level and at least one other")
        if self.kind == "age_bands" and self.levels != [b[0] for b in AGE_BANDS]:
            raise InputError(f"{what}: levels {self.levels}; expected the age bands {[b[0] for b in AGE_BANDS]}")
        for key in ("mean", "sd"):
            if not _is_real(getattr(self, key)) or not math.isfinite(getattr(self, key)):
                raise InputError(f"{what}: {key} {getattr(self, key)!r}; expected a finite number")
        if self.kind == "continuous" and self.sd <= 0:
            raise InputError(f"{what}: standard deviation {self.sd!r}; expected a positive number")

    def columns(self) -> list[str]:
        if self.kind in ("categorical", "age_bands"):
            return [f"{self.name}[{level}]" for level in self.levels[1:]]
        return [self.name]

    def encode(self, values: pd.Series) -> pd.DataFrame:
        if self.kind == "binary":
            return pd.DataFrame({self.name: values.astype(float).to_numpy()}, index=values.index)
        if self.kind == "continuous":
            return pd.DataFrame({self.name: ((values.astype(float) - self.mean) / self.sd).to_numpy()}, index=values.index)
        labels = age_band(values) if self.kind == "age_bands" else values.astype(str)
        unknown = set(labels) - set(self.levels)
        if unknown:
            raise InputError(f"column '{self.name}': found level(s) {sorted(unknown)}; expected one of {self.levels}")
        return pd.DataFrame({f"{self.name}[{lv}]": (labels == lv).astype(float).to_numpy() for lv in self.levels[1:]}, index=values.index)


def age_band(values: pd.Series) -> pd.Series:
    ages = values.astype(float)
    out = pd.Series(index=values.index, dtype=object)
    for label, lo, hi in AGE_BANDS:
        out[(ages > lo) & (ages <= hi)] = label
    return out


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: object) -> None:
    """A seed the random generators accept: refused here in one line rather than deep in scikit-learn."""
    if not _is_whole(seed) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InputError(f"seed {seed!r}: expected a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}")


def _is_binary(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and set(values.dropna().astype(float).unique()) <= {0.0, 1.0} or values.dtype == bool


def fit_coding(name: str, values: pd.Series, standardize_all: bool = False) -> Coding:
    """The coding of a column, learnt from the training split (see the module docstring)."""
    if values.nunique(dropna=True) < 2:
        raise InputError(f"column '{name}' is constant ({values.dropna().unique()[:1].tolist()}); it cannot be estimated: drop it")
    if standardize_all:
        return Coding(name, "continuous", mean=float(values.mean()), sd=float(values.std(ddof=1)))
    if name.strip().lower() == "age" and pd.api.types.is_numeric_dtype(values):
        return Coding(name, "age_bands", levels=[b[0] for b in AGE_BANDS])
    if _is_binary(values):
        return Coding(name, "binary")
    if pd.api.types.is_numeric_dtype(values):
        return Coding(name, "continuous", mean=float(values.mean()), sd=float(values.std(ddof=1)))
    counts = values.dropna().astype(str).value_counts(sort=False)
    if len(counts) > len(values.dropna()) / 2:
        raise InputError(f"column '{name}': {len(counts)} different texts in {len(values.dropna())} rows (e.g. {counts.index[:3].tolist()}); "
                         "expected numbers, or categories each shared by several patients")
    reference = counts.idxmax()
    return Coding(name, "categorical", levels=[reference] + sorted(lv for lv in counts.index if lv != reference))


def design(frame: pd.DataFrame, codings: list[Coding]) -> pd.DataFrame:
    """The design matrix with an intercept column ``const``."""
    parts = [c.encode(frame[c.name]) for c in codings]
    return sm.add_constant(pd.concat(parts, axis=1), has_constant="add")


# ---------------------------------------------------------------------------- cohort
def read_extents(path: Path) -> tuple[pd.Series, pd.Series]:
    """The imaging extent per case from ``segment``'s output folder (or its measurements.csv):
    a CT's lesion extent (% of lung), or for a radiograph its opacity % of lung (Tang et al.
    2020), the column radiograph rows fill instead (see the README on studies mixing both); and
    each case's quality flags ("ok", or the codes; empty extents where the lungs were not in the
    image), so that an analysis can say which cases it set aside and why."""
    path = Path(path)
    csv = path / "measurements.csv" if path.is_dir() else path
    if not csv.exists():
        raise InputError(f"{path}: no measurements.csv; expected the output folder of 'lunglesionquant segment'")
    table = _read_csv(csv, {"case": str})
    if "case" not in table or not {EXTENT, RADIOGRAPH_EXTENT} & set(table):
        raise InputError(f"{csv}: found columns {list(table.columns)[:6]}...; expected 'case' and '{EXTENT}' (CT) or '{RADIOGRAPH_EXTENT}' (radiograph)")
    table = table.set_index("case")
    ct = pd.to_numeric(table[EXTENT], errors="coerce") if EXTENT in table else pd.Series(np.nan, index=table.index)
    radiograph = pd.to_numeric(table[RADIOGRAPH_EXTENT], errors="coerce") if RADIOGRAPH_EXTENT in table else pd.Series(np.nan, index=table.index)
    extents = ct.where(ct.notna(), radiograph)
    outside = extents[(extents < 0) | (extents > 100) | np.isinf(extents)]
    if not outside.empty:
        raise InputError(f"{csv}: found lesion extents {outside.head(5).to_dict()}; expected 0-100 %")
    return extents, quality_of(table)


def _read_csv(path: Path, dtype: dict | None = None, **kwargs) -> pd.DataFrame:
    """A CSV table, or a one-line error naming the file."""
    try:
        return pd.read_csv(path, dtype=dtype, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; expected a CSV table") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: could not be read as a CSV table ({str(exc).splitlines()[0][:200]})") from None


# Plausible values: a patient's age in years; a lesion extent in % of the lung.
AGE_RANGE = (0.0, 120.0)
EXTENT_RANGE = (0.0, 100.0)
# A number, bare or followed by text without digits ('51', '51 years', '51y', '1,5', '12 %'): a column mostly
# of these is a column of numbers, whatever a few entries say.
NUMBER_WITH_TEXT = re.compile(r"^\s*[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)\D*$")
# load_cohort numbers a cohort's rows as a spreadsheet does (the header is row 1), so that messages can name them.
ROW = "row"


def _show(value: object) -> str:
    return f"{value:g}" if _is_real(value) else repr(str(value))


def _rows(index: pd.Index) -> str:
    """'row 7' or 'rows 3, 7, 9, 12, 15 ... (40 rows)' of a cohort's row numbers."""
    rows = [str(r) for r in index[:5]]
    return f"row {rows[0]}" if len(index) == 1 else f"rows {', '.join(rows)}" + (f" ... ({len(index)} rows)" if len(index) > 5 else "")


def _listing(bad: pd.Series) -> str:
    """The offending values of a column, each with the rows holding it when the rows are known."""
    shown = []
    for value in pd.unique(bad)[:3]:
        rows = bad.index[(bad == value).to_numpy()]
        shown.append(_show(value) + (f" in {_rows(rows)}" if bad.index.name == ROW else ""))
    more = bad.nunique() - len(shown)
    return "; ".join(shown) + (f"; and {more} other value(s)" if more > 0 else "")


def check_values(name: str, values: pd.Series, where: str) -> pd.Series:
    """A covariate column with its values checked, so that a typo is named instead of ending in a
    fit that does not converge or a wrong coding: a column mostly of numbers (bare or with a unit:
    '51 years', '1,5') is refused naming each entry that is not a bare number and its rows; ages
    outside 0-120, extents outside 0-100 % and infinite numbers are refused. Rows are named when
    the index is :data:`ROW` (as :func:`load_cohort` numbers them). Returns the column, numeric
    where it is numbers."""
    present = values.dropna()
    if present.empty:
        return values
    numeric = pd.to_numeric(present, errors="coerce")
    if not pd.api.types.is_numeric_dtype(present):
        like_numbers = numeric.notna() | present.astype(str).str.match(NUMBER_WITH_TEXT)
        if like_numbers.mean() >= 0.5:
            bad = present[numeric.isna()]
            if not bad.empty:
                raise InputError(f"{where}: column '{name}': {_listing(bad)} {'is' if bad.nunique() == 1 else 'are'} not a number; "
                                 "expected a number without units in every row")
            values = pd.to_numeric(values, errors="coerce")
            numeric = values.dropna()
    if pd.api.types.is_numeric_dtype(numeric) and numeric.notna().all():
        limits = AGE_RANGE if name.strip().lower() == "age" else EXTENT_RANGE if name == EXTENT else (-np.inf, np.inf)
        bad = numeric[~np.isfinite(numeric) | (numeric < limits[0]) | (numeric > limits[1])]
        if not bad.empty:
            raise InputError(f"{where}: column '{name}' holds {_listing(bad)}; expected finite values"
                             + (f" within {limits[0]:g}-{limits[1]:g}" if np.isfinite(limits[1]) else ""))
    return values


def check_roles(id_column: str, outcome: str, covariates: list[str], score: str | None = None, extent: bool = False) -> None:
    """Refuse a column given two roles, or one covariate named twice: its values would enter the
    model twice, the outcome would predict itself, or the ids would become a covariate."""
    roles: dict[str, list[str]] = {}
    for role, column in ([("the id", id_column), ("the outcome", outcome)] + [("a covariate", c) for c in covariates]
                         + ([("the score", score)] if score else []) + ([("the extent from --extent-from", EXTENT)] if extent else [])):
        roles.setdefault(column, []).append(role)
    clashes = []
    for column, given in roles.items():
        if len(given) > 1:
            named = [f"{role} {given.count(role)} times" if given.count(role) > 1 else role for role in dict.fromkeys(given)]
            clashes.append(f"column '{column}' is given as {' and as '.join(named)}")
    if clashes:
        raise InputError("; ".join(clashes) + "; expected each column once, in one role (id, outcome, covariate, score)")


def _repeated_in_header(cohort_csv: Path, wanted: list[str]) -> None:
    """Refuse a wanted column whose name heads two columns: pandas would silently read the first
    and rename the other, so which values are used would be a guess."""
    header = _read_csv(cohort_csv, dtype=str, header=None, nrows=1).iloc[0].tolist()
    repeated = {c: [i + 1 for i, h in enumerate(header) if h == c] for c in dict.fromkeys(wanted) if header.count(c) > 1}
    if repeated:
        raise InputError(f"{cohort_csv}: " + "; ".join(f"column '{c}' appears {len(at)} times in the header (columns {at})" for c, at in repeated.items())
                         + "; expected each column name once")


def _outcome_values(outcome: str, values: pd.Series) -> pd.Series:
    """The outcome as 0/1 numbers, or a one-line refusal naming what else it holds and where."""
    present = values.dropna()
    numeric = pd.to_numeric(present, errors="coerce")
    bad = present[~numeric.isin([0, 1])]
    if not bad.empty:
        raise InputError(f"outcome '{outcome}': found {_listing(bad)}; expected binary 0/1 with both present")
    if numeric.nunique() < 2:
        raise InputError(f"outcome '{outcome}': found only {sorted(numeric.unique().tolist()) or 'empty values'} in {len(values)} rows; "
                         "expected binary 0/1 with both present")
    return numeric.reindex(values.index)


def load_cohort(cohort_csv: Path, id_column: str, outcome: str, covariates: list[str],
                extent_from: Path | None = None, score: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The analysis table: id, outcome, covariates, and the score / extent when given. Every
    misuse of the table (a column in two roles or twice in the header, rows without an id,
    duplicated ids, text in a number column, an outcome other than 0/1) is refused naming it."""
    check_roles(id_column, outcome, list(covariates), score, extent_from is not None)
    table = _read_csv(cohort_csv, {id_column: str}, na_values=["NULL", "NA", ""])
    wanted = [id_column, outcome] + list(covariates) + ([score] if score else [])
    absent = [c for c in wanted if c not in table.columns]
    if absent:
        raise InputError(f"{cohort_csv}: no column(s) {absent}; available: {list(table.columns)}")
    _repeated_in_header(cohort_csv, wanted)
    if table.empty:
        raise InputError(f"{cohort_csv}: a header but no rows; expected a row per patient")
    table.index = pd.RangeIndex(2, len(table) + 2, name=ROW)
    empty = [c for c in wanted if table[c].isna().all()]
    if empty:
        raise InputError(f"{cohort_csv}: column(s) {empty} hold no value in any of the {len(table)} rows; expected values")
    no_id = table.index[table[id_column].isna()]
    if len(no_id):
        raise InputError(f"{cohort_csv}: column '{id_column}' (the ids) is empty in {_rows(no_id)}; expected an id in every row")
    duplicated = table.loc[table[id_column].duplicated(keep=False), id_column].unique().tolist()
    if duplicated:
        raise InputError(f"{cohort_csv}: id(s) {duplicated[:10]} of '{id_column}' appear more than once; expected one row per patient")
    for column in list(covariates) + ([score] if score else []):
        table[column] = check_values(column, table[column], str(cohort_csv))
    table[outcome] = _outcome_values(outcome, table[outcome])
    notes = []
    frame = table[wanted].copy()
    frame[id_column] = frame[id_column].astype(str)
    if extent_from is not None:
        extents, quality = read_extents(extent_from)
        matched = frame[id_column].isin(extents.index)
        if not matched.any():
            raise InputError(f"none of the {len(frame)} ids of '{id_column}' matches a case of {extent_from} "
                             f"(ids e.g. {frame[id_column].head(3).tolist()}, cases e.g. {extents.index[:3].tolist()})")
        if not matched.all():
            unmatched = frame.loc[~matched, id_column].tolist()
            notes.append(f"{len(unmatched)} of {len(frame)} ids match no measurement and are left out: {unmatched[:10]}{' ...' if len(unmatched) > 10 else ''}")
        frame = frame[matched]
        frame[EXTENT] = extents.reindex(frame[id_column]).to_numpy()
        flags = quality.reindex(frame[id_column])
        withheld, flagged = flags[frame[EXTENT].isna().to_numpy()], flags[frame[EXTENT].notna().to_numpy() & (flags != QUALITY_OK).to_numpy()]
        if len(withheld):
            notes.append(f"{len(withheld)} patients set aside: no lesion extent, by their quality flags {dict(list(withheld.items())[:10])}")
        if len(flagged):
            notes.append(f"{len(flagged)} patients kept whose measurements carry quality flags (check their overlays): {dict(list(flagged.items())[:10])}")
    incomplete = frame.isna().any(axis=1)
    if incomplete.any():
        notes.append(f"{int(incomplete.sum())} patients with missing values are left out: {frame.loc[incomplete, id_column].tolist()[:10]}")
        frame = frame[~incomplete]
    frame[outcome] = frame[outcome].astype(int)
    if "age" in {c.lower() for c in covariates}:
        age = next(c for c in covariates if c.lower() == "age")
        if pd.api.types.is_numeric_dtype(frame[age]) and (frame[age] < 18).any():
            notes.append(f"{int((frame[age] < 18).sum())} patients are under 18: counted in the 18-44 band")
    return frame.reset_index(drop=True), notes


# ---------------------------------------------------------------------------- fitting
@dataclass
class FittedModel:
    """A fitted logistic model in plain numbers: what model.json holds."""

    name: str
    outcome: str
    codings: list[Coding]
    columns: list[str]
    coefficients: list[float]
    covariance: list[list[float]]
    n_train: int
    events_train: int
    seed: int
    synthetic: bool = False

    def __post_init__(self) -> None:
        """Refuse a model that could only give wrong numbers, one line naming what is wrong: a
        model comes from a fit or from a model.json a person may have edited or damaged, and both
        pass here. The terms must be the codings' terms, each with a finite coefficient within
        :data:`MAX_LOGIT`; the covariance a finite, symmetric, positive semidefinite matrix of one
        row and column per term."""
        for key in ("name", "outcome"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise InputError(f"{key} {getattr(self, key)!r}; expected a text")
        if not isinstance(self.codings, list) or not all(isinstance(c, Coding) for c in self.codings) or not self.codings:
            raise InputError(f"codings {self.codings!r}; expected a list of the covariates' codings")
        names = [c.name for c in self.codings]
        if len(set(names)) != len(names):
            raise InputError(f"codings of {sorted({n for n in names if names.count(n) > 1})} given twice; expected one coding per covariate")
        terms = ["const"] + [column for c in self.codings for column in c.columns()]
        if not isinstance(self.columns, list) or not all(isinstance(c, str) for c in self.columns):
            raise InputError(f"columns {self.columns!r}; expected a list of term names")
        mismatch = {"unknown": [c for c in self.columns if c not in terms], "lacking": [t for t in terms if t not in self.columns],
                    "repeated": sorted({c for c in self.columns if self.columns.count(c) > 1})}
        if any(mismatch.values()):
            raise InputError(f"terms do not match the codings ({', '.join(f'{k} {v}' for k, v in mismatch.items() if v)}); expected {terms}")
        k = len(terms)
        if not isinstance(self.coefficients, list) or len(self.coefficients) != k:
            found = len(self.coefficients) if isinstance(self.coefficients, list) else repr(self.coefficients)
            raise InputError(f"{found} coefficients; expected {k}, one per term {self.columns}")
        for term, b in zip(self.columns, self.coefficients):
            if not _is_real(b) or not math.isfinite(b) or abs(b) > MAX_LOGIT:
                raise InputError(f"coefficient of '{term}' is {b!r}; expected a finite number within ±{MAX_LOGIT:g} (a larger one means separation)")
        rows = self.covariance
        if not isinstance(rows, list) or len(rows) != k or not all(isinstance(r, list) and len(r) == k for r in rows):
            found = f"{len(rows)} rows of lengths {[len(r) if isinstance(r, list) else r for r in rows][:8]}" if isinstance(rows, list) else repr(rows)[:40]
            raise InputError(f"covariance of {found}; expected {k} x {k}, a row and a column per term")
        if not all(_is_real(v) for r in rows for v in r):
            raise InputError(f"covariance holds {next(v for r in rows for v in r if not _is_real(v))!r}; expected numbers")
        matrix = np.array(rows, dtype=float)
        if not np.isfinite(matrix).all():
            i, j = np.argwhere(~np.isfinite(matrix))[0]
            raise InputError(f"covariance [{i}][{j}] ({self.columns[i]}, {self.columns[j]}) is {matrix[i, j]}; expected finite numbers")
        tolerance = 1e-8 * max(float(np.abs(matrix).max()), 1e-300)
        asymmetry = np.abs(matrix - matrix.T)
        if asymmetry.max() > tolerance:
            i, j = np.unravel_index(int(np.argmax(asymmetry)), matrix.shape)
            raise InputError(f"covariance is not symmetric: [{i}][{j}] = {matrix[i, j]:g} but [{j}][{i}] = {matrix[j, i]:g}; expected a covariance matrix")
        smallest = float(np.linalg.eigvalsh(matrix).min())
        if smallest < -tolerance:
            raise InputError(f"covariance is not positive semidefinite (an eigenvalue of {smallest:.3g}: negative variances); expected a covariance matrix")
        for key in ("n_train", "events_train"):
            if not _is_whole(getattr(self, key)) or getattr(self, key) < 0:
                raise InputError(f"{key} {getattr(self, key)!r}; expected a whole number of patients")
        if self.events_train > self.n_train:
            raise InputError(f"events_train {self.events_train} above n_train {self.n_train}; expected at most all patients")
        check_seed(self.seed)
        if not isinstance(self.synthetic, bool):
            raise InputError(f"synthetic {self.synthetic!r}; expected true or false")

    def linear_predictor(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x = design(frame, self.codings)[self.columns].to_numpy(float)
        beta, cov = np.asarray(self.coefficients), np.asarray(self.covariance)
        eta = x @ beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, cov, x))
        return eta, se

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Probability with a 95 % CI (delta method on the logit scale)."""
        eta, se = self.linear_predictor(frame)
        from scipy.special import expit

        return pd.DataFrame({"probability": expit(eta), "ci_low": expit(eta - 1.959964 * se), "ci_high": expit(eta + 1.959964 * se)},
                            index=frame.index)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "codings": [asdict(c) for c in self.codings]}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> FittedModel:
        """The model of :meth:`to_json`'s text; an InputError names what is not (invalid JSON, a
        missing or unknown key; the numbers are checked on construction)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        _check_keys(data, cls, "the model")
        if not isinstance(data["codings"], list):
            raise InputError(f"codings {data['codings']!r}; expected a list of the covariates' codings")
        for coding in data["codings"]:
            _check_keys(coding, Coding, "a coding")
        return cls(**{**data, "codings": [Coding(**c) for c in data["codings"]]})

    @classmethod
    def load(cls, path: Path) -> FittedModel:
        """A model file written by ``risk fit``, or a one-line error saying what is wrong with it."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: no such file; expected a model.json written by 'lunglesionquant risk fit'") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                             "expected a model.json written by 'lunglesionquant risk fit'") from None
        try:
            return cls.from_json(text)
        except InputError as exc:
            raise InputError(f"{path}: not a model written by 'lunglesionquant risk fit': {exc}") from None


def _check_keys(data: object, kind: type, what: str) -> None:
    """Refuse a JSON value that is not an object with the dataclass ``kind``'s keys: those without
    a default present, none unknown (a misspelt key would otherwise be ignored or crash)."""
    if not isinstance(data, dict):
        raise InputError(f"{what} is {json.dumps(data)[:40]}; expected a JSON object")
    known = [f.name for f in fields(kind)]
    required = [f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING]
    lacking, unknown = [k for k in required if k not in data], [k for k in data if k not in known]
    if lacking or unknown:
        raise InputError(f"{what} {'lacks ' + str(lacking) if lacking else ''}{' and ' if lacking and unknown else ''}"
                         f"{'has unknown ' + str(unknown) if unknown else ''}; expected the keys {known}")


def _separating_terms(y: pd.Series, x: pd.DataFrame) -> str:
    """The design columns that (nearly) separate the outcome, to name in a failed fit: a 0/1
    column whose 1s (or 0s) all have one outcome, or a numeric one whose two outcome groups do
    not overlap. '' when none does on its own."""
    outcome = np.asarray(y, dtype=int)
    if np.unique(outcome).size < 2:
        return ""
    found = []
    for column in x.columns.drop("const", errors="ignore"):
        v = x[column].to_numpy(float)
        if np.isin(v, (0.0, 1.0)).all():
            separates = any(np.unique(outcome[v == level]).size == 1 for level in (0.0, 1.0) if (v == level).any())
        else:
            cases, controls = v[outcome == 1], v[outcome == 0]
            separates = cases.max() < controls.min() or controls.max() < cases.min()
        if separates:
            found.append(column)
    return ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")


def _fit_logit(y: pd.Series, x: pd.DataFrame, label: str):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = sm.Logit(y, x).fit(disp=0, maxiter=200)
        except (PerfectSeparationWarning, np.linalg.LinAlgError) as exc:
            raise InputError(f"model {label}: perfect separation or collinearity ({type(exc).__name__}): {_separating_terms(y, x) or 'some covariate'} "
                             f"predicts the outcome exactly in the training split; expected overlapping groups — drop or merge it") from None
        except ConvergenceWarning:
            terms = _separating_terms(y, x)
            raise InputError(f"model {label}: the fit did not converge ({terms + ': patients of one outcome only' if terms else 'quasi-separation?'}); "
                             "expected a cohort where every covariate level has both outcomes") from None
    if not np.all(np.isfinite(result.bse)) or np.any(np.abs(result.params) > MAX_LOGIT):
        raise InputError(f"model {label}: perfect separation (coefficients diverge: {result.params.abs().idxmax()}); drop or merge that covariate")
    return result


def youden(y: np.ndarray, score: np.ndarray) -> dict:
    """The cut-off maximizing sensitivity + specificity − 1 (values ≥ cut-off are positive)."""
    fpr, tpr, thresholds = roc_curve(y, score)
    best = int(np.argmax(tpr - fpr))
    return {"cutoff": float(thresholds[best]), "sensitivity": float(tpr[best]), "specificity": float(1 - fpr[best]),
            "youden_j": float(tpr[best] - fpr[best])}


def calibration(y: np.ndarray, p: np.ndarray) -> dict:
    """Calibration slope (logit(p) as the only predictor) and calibration-in-the-large intercept."""
    logit = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))
    slope = sm.GLM(y, sm.add_constant(logit), family=sm.families.Binomial()).fit()
    large = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=logit).fit()
    return {"slope": float(slope.params[1]), "slope_ci": [float(v) for v in slope.conf_int()[1]],
            "intercept": float(large.params[0]), "intercept_ci": [float(v) for v in large.conf_int()[0]]}


def _linear_predictor(codings: list[Coding], params: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    return design(frame, codings)[params.index].to_numpy(float) @ params.to_numpy(float)


@dataclass
class ModellingStrategy:
    """How models A/B/C are developed from training rows: the coding learnt on those rows, the
    stepwise selection of the clinical covariates when asked (the score and the extent are
    always kept), then the logistic fits. One object, so that Harrell's bootstrap repeats
    exactly what produced the reported models."""

    outcome: str
    covariates: list[str]
    score: str | None = None
    extent: bool = False
    selection: StepwiseRule | None = None

    def develop(self, train: pd.DataFrame) -> tuple[dict[str, tuple[list[Coding], object]], dict | None]:
        """{model: (codings, statsmodels fit)}, and the selection's record (None without selection)."""
        base = [fit_coding(c, train[c]) for c in self.covariates]
        record = None
        if self.selection is not None:
            blocks = {c.name: c.encode(train[c.name]) for c in base}
            record = select_covariates(train[self.outcome], blocks, self.selection, _fit_logit)
            if not record["selected"]:
                raise InputError(f"{self.selection.describe()}: kept none of {self.covariates}; "
                                 "expected at least one covariate for model A (fit without --select)")
            base = [c for c in base if c.name in record["selected"]]
        specs = {"A": base}
        if self.score:
            specs["B"] = base + [fit_coding(self.score, train[self.score], standardize_all=True)]
        if self.extent:
            specs["C"] = base + [fit_coding(EXTENT, train[EXTENT], standardize_all=True)]
        return {name: (codings, _fit_logit(train[self.outcome], design(train, codings), name)) for name, codings in specs.items()}, record

    def linear_predictors(self, train: pd.DataFrame) -> dict:
        """The models developed on ``train``, each as a function giving the linear predictor of a frame."""
        fits, _ = self.develop(train)
        return {name: functools.partial(_linear_predictor, codings, result.params) for name, (codings, result) in fits.items()}


@dataclass
class RiskStudy:
    models: dict[str, FittedModel]
    odds_ratios: pd.DataFrame
    predictions: pd.DataFrame
    summary: dict
    nomogram: Nomogram


def fit_study(frame: pd.DataFrame, id_column: str, outcome: str, covariates: list[str], score: str | None = None,
              seed: int = 0, notes: list[str] | None = None, synthetic: bool = False,
              selection: StepwiseRule | None = None, bootstraps: int = BOOTSTRAPS) -> RiskStudy:
    """Fit models A (and B, C when a score / the extent is present) and evaluate them: on the
    validation split, and by ``bootstraps`` samples of Harrell's internal validation (0: none)."""
    check_seed(seed)
    y = frame[outcome].to_numpy(int)
    if min(int(y.sum()), int(len(y) - y.sum())) < MIN_PER_OUTCOME:
        raise InputError(f"outcome '{outcome}': found {int(y.sum())} patients with it and {int(len(y) - y.sum())} without; "
                         f"expected at least {MIN_PER_OUTCOME} of each to fit and validate a model")
    train_idx, valid_idx = train_test_split(np.arange(len(frame)), test_size=0.3, stratify=y, random_state=seed)
    train, valid = frame.iloc[train_idx], frame.iloc[valid_idx]
    if train[outcome].nunique() < 2 or valid[outcome].nunique() < 2:
        raise InputError(f"outcome '{outcome}': too few events ({int(y.sum())}) to split 70/30 with both outcomes on each side")
    strategy = ModellingStrategy(outcome, list(covariates), score, EXTENT in frame, selection)
    fits, selection_record = strategy.develop(train)
    notes = list(notes or [])
    models, or_rows = {}, []
    predictions = pd.DataFrame({id_column: frame[id_column], "split": np.where(np.isin(np.arange(len(frame)), train_idx), "train", "validation"),
                                "outcome": y})
    summary: dict = {"synthetic": synthetic, "n": len(frame), "events": int(y.sum()), "seed": seed,
                     "split": {"train": len(train), "train_events": int(train[outcome].sum()),
                               "validation": len(valid), "validation_events": int(valid[outcome].sum())},
                     "c_statistic_method": "validation split; 95 % CI by percentile bootstrap (2000 resamples, cases and controls resampled separately)",
                     "selection": selection_record, "models": {}}
    for name, (codings, result) in fits.items():
        epv = train[outcome].sum() / (len(result.params) - 1)
        if epv < MIN_EVENTS_PER_PARAMETER:
            notes.append(f"model {name}: {epv:.1f} events per parameter in the training split (< {MIN_EVENTS_PER_PARAMETER}): estimates are unstable")
        model = FittedModel(name, outcome, codings, list(result.params.index), result.params.tolist(),
                            result.cov_params().to_numpy().tolist(), len(train), int(train[outcome].sum()), seed, synthetic)
        models[name] = model
        ci = np.exp(result.conf_int())
        for col in result.params.index[1:]:
            or_rows.append({"model": name, "term": col, "odds_ratio": float(np.exp(result.params[col])),
                            "ci_low": float(ci.loc[col, 0]), "ci_high": float(ci.loc[col, 1]), "p": float(result.pvalues[col])})
        predictions[f"probability_{name}"] = model.predict(frame)["probability"].to_numpy()
        p_valid = predictions[f"probability_{name}"].to_numpy()[valid_idx]
        auc, lo, hi = bootstrap_auc(valid[outcome].to_numpy(int), p_valid, seed)
        summary["models"][name] = {"covariates": [c.name for c in codings], "c_statistic": auc, "c_statistic_ci": [lo, hi],
                                   "c_statistic_train": float(roc_auc_score(train[outcome], predictions[f"probability_{name}"].to_numpy()[train_idx])),
                                   "calibration_validation": calibration(valid[outcome].to_numpy(int), p_valid),
                                   "hosmer_lemeshow_validation": hosmer_lemeshow(valid[outcome].to_numpy(int), p_valid),
                                   "events_per_parameter": float(epv)}
    for name in ("B", "C"):
        if name in fits:
            summary["models"][name]["lr_test_vs_A"] = lr_test(fits["A"][1], fits[name][1])
            summary["models"][name]["interactions"] = _interactions(train, outcome, *fits[name])
    summary["internal_validation"] = None
    if bootstraps:
        in_cohort_order = frame.iloc[np.sort(train_idx)]  # the order the bootstrap's documented rows refer to
        internal = optimism_corrected(in_cohort_order, outcome, strategy.linear_predictors, bootstraps, seed)
        for name, figures in internal.pop("models").items():
            summary["models"][name]["internal_validation"] = figures
        summary["internal_validation"] = internal
        if internal["replicates_skipped"]:
            notes.append(f"internal validation: {bootstraps - internal['replicates_used']} of {bootstraps} bootstrap samples "
                         f"could not be fitted and were skipped (e.g. {internal['replicates_skipped'][0]})")
    y_valid = valid[outcome].to_numpy(int)
    comparisons = {}
    for first, second in (("A", "B"), ("A", "C"), ("B", "C")):
        if first in models and second in models:
            comparisons[f"{first} vs {second}"] = delong_paired(y_valid, predictions[f"probability_{first}"].to_numpy()[valid_idx],
                                                                 predictions[f"probability_{second}"].to_numpy()[valid_idx])
    summary["c_statistic_comparisons"] = comparisons
    summary["c_statistic_comparison_method"] = ("validation split; difference (second − first) with 95 % CI and two-sided "
                                                "p by DeLong's test for paired ROC curves (DeLong et al. 1988)")
    richest = "C" if "C" in models else "B" if "B" in models else "A"
    predictions["predicted_probability"] = predictions[f"probability_{richest}"]
    summary["richest_model"] = richest
    nomogram = build_nomogram(models[richest], train)
    summary["nomogram"] = nomogram.describe()
    for label, column in (("extent", EXTENT), ("score", score)):
        if column and column in frame:
            cut = youden(train[outcome].to_numpy(int), train[column].to_numpy(float))
            v = valid[column].to_numpy(float) >= cut["cutoff"]
            yv = valid[outcome].to_numpy(int)
            cut["validation_sensitivity"] = float(v[yv == 1].mean())
            cut["validation_specificity"] = float((~v[yv == 0]).mean())
            summary[f"youden_{label}"] = cut
            auc, lo, hi = bootstrap_auc(y, frame[column].to_numpy(float), seed)
            summary[f"single_score_roc_{label}"] = {"column": column, "auc_all_patients": auc, "ci": [lo, hi]}
    summary["notes"] = notes
    return RiskStudy(models, pd.DataFrame(or_rows), predictions, summary, nomogram)


def _interactions(train: pd.DataFrame, outcome: str, codings: list[Coding], fitted) -> list[dict]:
    """Second-order interactions of the score with each covariate: LR test of adding each product."""
    x = design(train, codings)
    score_col = codings[-1].columns()[0]
    out = []
    for coding in codings[:-1]:
        extra = x.copy()
        for col in coding.columns():
            extra[f"{score_col}:{col}"] = x[score_col] * x[col]
        try:
            bigger = _fit_logit(train[outcome], extra, f"interaction {coding.name}")
            out.append({"covariate": coding.name, **lr_test(fitted, bigger)})
        except InputError as exc:
            out.append({"covariate": coding.name, "lr": None, "df": None, "p": None, "note": str(exc)})
    return out


# ---------------------------------------------------------------------------- outputs
def plot_roc(study: RiskStudy, frame: pd.DataFrame, path: Path) -> Path:
    """ROC curves on the validation split for each model, and the extent alone with its Youden point."""
    valid = study.predictions["split"] == "validation"
    y = study.predictions.loc[valid, "outcome"].to_numpy(int)
    fig = new_figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name in study.models:
        fpr, tpr, _ = roc_curve(y, study.predictions.loc[valid, f"probability_{name}"])
        m = study.summary["models"][name]
        ax.plot(fpr, tpr, label=f"Model {name}: C = {m['c_statistic']:.2f} [{m['c_statistic_ci'][0]:.2f}, {m['c_statistic_ci'][1]:.2f}]")
    if EXTENT in frame:
        fpr, tpr, _ = roc_curve(y, frame.loc[valid.to_numpy(), EXTENT])
        ax.plot(fpr, tpr, ":", label=f"lesion extent alone: AUC = {roc_auc_score(y, frame.loc[valid.to_numpy(), EXTENT]):.2f}")
        cut = study.summary["youden_extent"]
        ax.plot(1 - cut["validation_specificity"], cut["validation_sensitivity"], "ko",
                label=f"Youden cut-off {cut['cutoff']:.1f} % (training)")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    title = "ROC, validation split" + (" — SYNTHETIC COHORT" if study.summary["synthetic"] else "")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    save_png(fig, path)
    return path


def write_study(study: RiskStudy, frame: pd.DataFrame, out: Path) -> dict[str, Path]:
    """model.json (the richest model), model_<X>.json, odds_ratios.csv, predictions.csv, summary.json,
    roc.png, on the validation split calibration.png, decision_curve.csv and decision_curve.png,
    and the richest model's nomogram.png and nomogram.csv (points of each axis tick)."""
    out.mkdir(parents=True, exist_ok=True)
    valid = study.predictions[study.predictions["split"] == "validation"]
    y_valid = valid["outcome"].to_numpy(int)
    probabilities = {name: valid[f"probability_{name}"].to_numpy() for name in study.models}
    curve = decision_curve(y_valid, probabilities)
    files = {"model.json": study.models[study.summary["richest_model"]].to_json(),
             **{f"model_{n}.json": m.to_json() for n, m in study.models.items()},
             "summary.json": json.dumps(study.summary, indent=2)}
    written = {}
    for name, text in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
        written[name] = out / name
    for name, table in (("odds_ratios.csv", study.odds_ratios), ("predictions.csv", study.predictions), ("decision_curve.csv", curve),
                        ("nomogram.csv", study.nomogram.table())):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False)
        written[name] = out / name
    written["roc.png"] = plot_roc(study, frame, out / "roc.png")
    synthetic = " — SYNTHETIC COHORT" if study.summary["synthetic"] else ""
    written["calibration.png"] = plot_calibration(y_valid, probabilities, out / "calibration.png", f"Calibration, validation split{synthetic}")
    written["decision_curve.png"] = plot_decision_curve(curve, out / "decision_curve.png", f"Decision curve, validation split{synthetic}")
    written["nomogram.png"] = plot_nomogram(study.nomogram, out / "nomogram.png", f"Nomogram, model {study.nomogram.model.name}{synthetic}")
    return written


def split_patient_text(text: str) -> list[str]:
    """Typed patient values as ``NAME=VALUE`` items: separated by commas or semicolons when the
    text has any ("AGE=63, RACE=BLACK OR AFRICAN AMERICAN"), else by the space before each next
    name ("AGE=63 SEX=M DIABETES TYPE II=1": names may hold spaces, values then may not)."""
    if re.search(r"[,;]", text):
        return [part.strip() for part in re.split(r"[,;]", text) if part.strip()]
    return [f"{name.strip()}={value}" for name, value in re.findall(r"\s*([^=]+?)\s*=\s*(\S*)", text)]


def parse_patient(items: list[str]) -> dict:
    """``["AGE=63", "SEX=M"]`` → ``{"AGE": 63.0, "SEX": "M"}`` (numbers where they parse)."""
    values: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"patient value {item!r}: expected NAME=VALUE")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            values[key.strip()] = value.strip()
    return values


def predict_patient(model: FittedModel, values: dict) -> dict:
    """One patient's probability with its 95 % CI; names the covariates that are missing."""
    needed = [c.name for c in model.codings]
    absent = [n for n in needed if n not in values]
    if absent:
        raise InputError(f"the patient lacks {absent}; the model needs {needed}")
    for coding in model.codings:
        value = values[coding.name]
        if coding.kind in ("binary", "continuous", "age_bands"):
            if not isinstance(value, float) or not np.isfinite(value):
                raise InputError(f"patient value {coding.name}={value}: expected a finite number")
            check_values(coding.name, pd.Series([value]), "the patient")
            if coding.kind == "binary" and value not in (0.0, 1.0):
                raise InputError(f"patient value {coding.name}={value:g}: expected 0 or 1")
    return model.predict(pd.DataFrame([{n: values[n] for n in needed}])).iloc[0].to_dict()
