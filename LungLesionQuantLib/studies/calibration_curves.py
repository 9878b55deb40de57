"""How well a risk model's probabilities hold, and whether acting on them helps: the
Hosmer–Lemeshow test, calibration by risk deciles with a smoothed curve, and decision curves
(net benefit against treat-all and treat-none; Vickers & Elkin, Med Decis Making 2006).

Not in statsmodels or scikit-learn as such (the smoothing is statsmodels' lowess); written
here from their definitions, each checked by hand in the tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.nonparametric.smoothers_lowess import lowess

from ..outputs.figures import new_figure, save_png

GROUPS = 10
THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)


def risk_groups(p: np.ndarray, groups: int = GROUPS) -> np.ndarray:
    """Group index (0..groups-1) of each patient by deciles of predicted risk (ties kept together)."""
    ranks = stats.rankdata(p, method="average")
    return np.minimum((groups * (ranks - 0.5) / len(p)).astype(int), groups - 1)


def calibration_table(y: np.ndarray, p: np.ndarray, groups: int = GROUPS) -> pd.DataFrame:
    """Per risk group: patients, mean predicted risk, observed events and observed fraction."""
    frame = pd.DataFrame({"group": risk_groups(p, groups), "y": y, "p": p})
    table = frame.groupby("group").agg(n=("y", "size"), predicted=("p", "mean"), events=("y", "sum"))
    table["observed"] = table["events"] / table["n"]
    return table.reset_index()


def hosmer_lemeshow(y: np.ndarray, p: np.ndarray, groups: int = GROUPS) -> dict:
    """Hosmer–Lemeshow goodness of fit over risk deciles: chi² = Σ (O − E)² / (E (1 − E / n)),
    groups − 2 degrees of freedom (a small p: the probabilities do not match what happened)."""
    table = calibration_table(np.asarray(y, float), np.asarray(p, float), groups)
    expected = table["predicted"] * table["n"]
    chi2 = float((((table["events"] - expected) ** 2) / (expected * (1 - expected / table["n"]))).sum())
    df = len(table) - 2
    return {"chi2": chi2, "df": df, "p": float(stats.chi2.sf(chi2, df)), "groups": len(table)}


def decision_curve(y: np.ndarray, probabilities: dict[str, np.ndarray], thresholds: np.ndarray = THRESHOLDS) -> pd.DataFrame:
    """Net benefit per threshold probability t: TP/n − FP/n × t / (1 − t) for each model, and for
    treating everyone; treating no one is 0."""
    y = np.asarray(y, int)
    n, prevalence = len(y), float(np.mean(y))
    odds = thresholds / (1 - thresholds)
    table = pd.DataFrame({"threshold": thresholds, "treat_all": prevalence - (1 - prevalence) * odds, "treat_none": 0.0})
    for name, p in probabilities.items():
        treated = np.asarray(p)[None, :] >= thresholds[:, None]
        tp = (treated & (y == 1)).sum(axis=1) / n
        fp = (treated & (y == 0)).sum(axis=1) / n
        table[f"model_{name}"] = tp - fp * odds
    return table


def plot_calibration(y: np.ndarray, probabilities: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Observed against predicted risk: deciles (points) and a lowess-smoothed curve per model."""
    fig = new_figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, p in probabilities.items():
        table = calibration_table(y, p)
        points = ax.plot(table["predicted"], table["observed"], "o", ms=4, label=f"Model {name} (deciles)")
        smooth = lowess(y, p, frac=0.6, it=0, return_sorted=True)  # no robustness passes: they treat rare events as outliers
        ax.plot(smooth[:, 0], smooth[:, 1], "-", color=points[0].get_color(), lw=1)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("predicted risk")
    ax.set_ylabel("observed fraction")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    save_png(fig, path)
    return path


def plot_decision_curve(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Net benefit of each model, treat-all and treat-none over threshold probabilities."""
    fig = new_figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for column in table.columns[1:]:
        style = ":" if column.startswith("treat") else "-"
        ax.plot(table["threshold"], table[column], style, label=column.replace("model_", "Model ").replace("_", " "))
    top = float(table.drop(columns="threshold").to_numpy().max())
    ax.set_ylim(-0.05 * max(top, 0.01), 1.1 * max(top, 0.01))
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    save_png(fig, path)
    return path
