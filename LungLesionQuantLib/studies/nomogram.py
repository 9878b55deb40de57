"""A nomogram of a fitted logistic model: a bedside reading of its probability without software.

Each covariate's share of the linear predictor, β·x, is turned into points: 0 at the value that
gives the lowest share, and the covariate whose shares span the widest range (over the training
values) runs 0–100; the others use the same points per unit of linear predictor. The total of a
patient's points maps back to the linear predictor, hence to the probability (the layout of
Harrell's rms::nomogram). Drawn on the project's own Agg figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..outputs.figures import new_figure, save_png

PROBABILITY_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


@dataclass
class Axis:
    """One covariate's scale: value labels at their points."""

    covariate: str
    labels: list[str]
    points: list[float]
    length: float  # points of the covariate's highest share (its lowest has 0)


@dataclass
class Nomogram:
    """Points of a model (a ``risk.FittedModel``: its codings, columns and coefficients)."""

    model: object
    minima: dict[str, float]  # lowest share of the linear predictor of each covariate
    points_per_unit: float    # points per unit of linear predictor
    scaled_on: str            # the covariate that spans 0-100
    axes: list[Axis]

    def _beta(self, columns: list[str]) -> np.ndarray:
        coefficients = dict(zip(self.model.columns, self.model.coefficients))
        return np.array([coefficients[c] for c in columns])

    def points(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each patient's points per covariate and their total."""
        table = pd.DataFrame(index=frame.index)
        for coding in self.model.codings:
            share = coding.encode(frame[coding.name]).to_numpy(float) @ self._beta(coding.columns())
            table[coding.name] = (share - self.minima[coding.name]) * self.points_per_unit
        table["total"] = table.sum(axis=1)
        return table

    def linear_predictor(self, total_points: np.ndarray) -> np.ndarray:
        """The linear predictor (log-odds) of a total of points."""
        intercept = self._beta(["const"])[0]
        return intercept + sum(self.minima.values()) + np.asarray(total_points, float) / self.points_per_unit

    def total_points(self, linear_predictor: np.ndarray) -> np.ndarray:
        """The total of points of a linear predictor (inverse of :meth:`linear_predictor`)."""
        intercept = self._beta(["const"])[0]
        return (np.asarray(linear_predictor, float) - intercept - sum(self.minima.values())) * self.points_per_unit

    def describe(self) -> dict:
        return {"model": self.model.name, "scaled_on": self.scaled_on, "points_per_unit_linear_predictor": float(self.points_per_unit),
                "linear_predictor_at_0_points": float(self.linear_predictor(0.0)),
                "max_total_points": float(sum(a.length for a in self.axes))}

    def table(self) -> pd.DataFrame:
        """Every axis tick: covariate, value, points (nomogram.csv)."""
        return pd.DataFrame([{"covariate": a.covariate, "value": label, "points": pts}
                             for a in self.axes for label, pts in zip(a.labels, a.points)])


def _shares(coding, beta: np.ndarray, values: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tick labels, the tick shares of the linear predictor and the (lowest, highest) share over
    the training values of one covariate."""
    if coding.kind in ("categorical", "age_bands"):
        shares = np.concatenate([[0.0], beta])  # the reference level first
        return list(coding.levels), shares, np.array([shares.min(), shares.max()])
    if coding.kind == "binary":
        ticks = np.array([0.0, 1.0])
    else:
        lo, hi = float(values.min()), float(values.max())
        ticks = np.unique(np.clip(MaxNLocator(nbins=6).tick_values(lo, hi), lo, hi))  # round steps, the ends exact
        ends = coding.encode(pd.Series([lo, hi])).to_numpy(float) @ beta
    shares = coding.encode(pd.Series(ticks)).to_numpy(float) @ beta
    span = shares if coding.kind == "binary" else ends
    return [f"{v:.3g}" for v in ticks], shares, np.array([span.min(), span.max()])


def build_nomogram(model, train: pd.DataFrame) -> Nomogram:
    """The nomogram of ``model``, its continuous axes spanning the training values."""
    coefficients = dict(zip(model.columns, model.coefficients))
    found = {}
    for coding in model.codings:
        found[coding.name] = _shares(coding, np.array([coefficients[c] for c in coding.columns()]), train[coding.name])
    ranges = {name: span[1] - span[0] for name, (_, _, span) in found.items()}
    widest = max(ranges, key=ranges.get)
    if ranges[widest] <= 0:
        raise ValueError(f"model {model.name}: every coefficient is 0; a nomogram needs a covariate that moves the risk")
    per_unit = 100.0 / ranges[widest]
    minima = {name: float(span[0]) for name, (_, _, span) in found.items()}
    axes = [Axis(name, labels, ((shares - minima[name]) * per_unit).tolist(), float(ranges[name] * per_unit))
            for name, (labels, shares, _) in found.items()]
    return Nomogram(model, minima, per_unit, widest, axes)


def _scale(ax, y: float, positions: np.ndarray, labels: list[str], name: str, line: tuple[float, float] | None = None) -> None:
    """A horizontal scale at height y over ``line`` (default: the ticks' range): ticks at x
    positions (0-100), labels alternating above and below where they would crowd."""
    ax.plot(line or [positions.min(), positions.max()], [y, y], color="black", lw=0.8)
    last, last_below = -np.inf, True
    for k in np.argsort(positions):
        x = positions[k]
        below = x - last < 6 and not last_below
        ax.plot([x, x], [y, y + 0.12], color="black", lw=0.8)
        ax.text(x, y - 0.28 if below else y + 0.2, labels[k], ha="center", va="top" if below else "bottom", fontsize=7)
        last, last_below = x, below
    ax.text(-4, y, name, ha="right", va="center", fontsize=8)


def plot_nomogram(nomogram: Nomogram, path: Path, title: str) -> Path:
    """Points, one scale per covariate, total points and the probability they give."""
    rows = len(nomogram.axes) + 3
    fig = new_figure(figsize=(8, 0.65 * rows + 1.0))
    ax = fig.subplots()
    points = np.arange(0, 101, 10, dtype=float)
    _scale(ax, rows - 1, points, [f"{v:g}" for v in points], "Points")
    for k, axis in enumerate(nomogram.axes):
        _scale(ax, rows - 2 - k, np.array(axis.points), axis.labels, axis.covariate, (0.0, axis.length))
    top = sum(a.length for a in nomogram.axes)
    totals = np.array([v for v in MaxNLocator(nbins=8).tick_values(0, top) if 0 <= v <= top])
    _scale(ax, 1, totals * 100 / top, [f"{v:g}" for v in totals], "Total points", (0.0, 100.0))
    probabilities = np.array(PROBABILITY_TICKS)
    at = nomogram.total_points(np.log(probabilities / (1 - probabilities)))
    inside = (at >= 0) & (at <= top)
    if inside.sum() < 2:  # a narrow range of risk: label its ends and middle instead
        at = np.array([0.0, top / 2, top])
        probabilities, inside = 1 / (1 + np.exp(-nomogram.linear_predictor(at))), np.ones(3, bool)
    _scale(ax, 0, at[inside] * 100 / top, [f"{p:.3g}" for p in probabilities[inside]], f"Probability of {nomogram.model.outcome}")
    ax.set_xlim(-35, 105)
    ax.set_ylim(-0.8, rows - 0.2)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    save_png(fig, path)
    return path
