"""Stepwise selection of a logistic model's clinical covariates, as Bartoli et al. 2022 did
before adjusting for the imaging score ("after stepwise selection and adjustment for clinical
characteristics").

A covariate enters or leaves whole (all dummy columns of a categorical or banded one at once),
so its likelihood-ratio test has as many degrees of freedom as it has columns. statsmodels fits
each candidate and gives its AIC; it has no stepwise routine, so the loop is here. The rule is
stated in the output (:meth:`StepwiseRule.describe`), with every step taken.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from ..errors import InputError

DIRECTIONS = ("backward", "forward")
CRITERIA = ("aic", "p")


def lr_test(small, big) -> dict:
    """Likelihood-ratio test of nested statsmodels fits."""
    stat = 2.0 * (big.llf - small.llf)
    df = int(big.df_model - small.df_model)
    return {"lr": float(stat), "df": df, "p": float(stats.chi2.sf(stat, df))}


@dataclass(frozen=True)
class StepwiseRule:
    """Backward (start with all covariates, remove one at a time) or forward (start with none,
    add one at a time); by AIC, or by the likelihood-ratio p-value against ``p_threshold``."""

    direction: str
    criterion: str = "aic"
    p_threshold: float = 0.05

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS or self.criterion not in CRITERIA:
            raise InputError(f"stepwise selection '{self.direction}' by '{self.criterion}': expected one of {DIRECTIONS} by one of {CRITERIA}")
        if not 0.0 < self.p_threshold < 1.0:
            raise InputError(f"stepwise p threshold {self.p_threshold:g}: expected a probability between 0 and 1")

    def describe(self) -> str:
        if self.criterion == "aic":
            change = "removal" if self.direction == "backward" else "addition"
            return (f"{self.direction} stepwise selection by AIC: at each step the {change} that lowers the AIC most, "
                    "until none lowers it")
        if self.direction == "backward":
            return (f"backward stepwise selection by p-value: at each step the covariate with the largest likelihood-ratio "
                    f"p is removed while that p is >= {self.p_threshold:g}")
        return (f"forward stepwise selection by p-value: at each step the covariate with the smallest likelihood-ratio "
                f"p is added while that p is < {self.p_threshold:g}")


def select_covariates(y: pd.Series, blocks: dict[str, pd.DataFrame], rule: StepwiseRule,
                      fit: Callable[[pd.Series, pd.DataFrame, str], object]) -> dict:
    """Covariates kept by ``rule``. ``blocks`` maps each covariate to its encoded columns;
    ``fit(y, x, label)`` fits a logistic model (raising :class:`InputError` where it cannot).
    Returns the rule, the candidates, the selected and left-out covariates and each step."""
    const = pd.Series(1.0, index=y.index, name="const")

    def fit_set(names: list[str]):
        x = pd.concat([const] + [blocks[n] for n in names], axis=1)
        return fit(y, x, f"stepwise ({', '.join(names) or 'intercept only'})")

    current = list(blocks) if rule.direction == "backward" else []
    fitted = fit_set(current)
    steps, unfit = [], {}
    while True:
        movable = current if rule.direction == "backward" else [n for n in blocks if n not in current and n not in unfit]
        trials = {}
        for name in movable:
            names = [n for n in current if n != name] if rule.direction == "backward" else current + [name]
            try:
                trials[name] = fit_set(names)
            except InputError as exc:  # e.g. a covariate that separates the outcome: it cannot enter
                unfit[name] = str(exc)
        if not trials:
            break
        tests = {name: lr_test(trial, fitted) if rule.direction == "backward" else lr_test(fitted, trial) for name, trial in trials.items()}
        if rule.criterion == "aic":
            best = min(trials, key=lambda n: trials[n].aic)
            if trials[best].aic >= fitted.aic:
                break
        else:
            pick = max if rule.direction == "backward" else min
            best = pick(tests, key=lambda n: tests[n]["p"])
            keeps_going = tests[best]["p"] >= rule.p_threshold if rule.direction == "backward" else tests[best]["p"] < rule.p_threshold
            if not keeps_going:
                break
        steps.append({"step": len(steps) + 1, "action": "removed" if rule.direction == "backward" else "added", "covariate": best,
                      "aic_before": float(fitted.aic), "aic_after": float(trials[best].aic), "lr_p": tests[best]["p"]})
        current = [n for n in current if n != best] if rule.direction == "backward" else current + [best]
        fitted = trials[best]
    record = {"rule": rule.describe(), "direction": rule.direction, "criterion": rule.criterion,
              "p_threshold": rule.p_threshold if rule.criterion == "p" else None, "candidates": list(blocks),
              "selected": [n for n in blocks if n in current], "left_out": [n for n in blocks if n not in current], "steps": steps}
    if unfit:
        record["could_not_be_fitted"] = unfit
    return record
