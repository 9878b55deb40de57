"""Overlap of a predicted mask with a reference, with one rule for empty masks (Tang et al. 2020).

A measure whose denominator is empty is undefined and returned as NaN, never as 0 or 1:
Dice when both masks are empty, sensitivity without reference, precision without prediction,
specificity without reference background. Averages skip such values and say how many they
skipped. Every evaluation in the tool (agreement, ``evaluate`` for CT and radiographs,
cross-validation, training logs) scores with these functions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Overlap:
    """Pixel counts of a reference mask and a predicted mask of the same grid."""

    reference: int
    predicted: int
    both: int
    total: int

    @classmethod
    def of(cls, reference: np.ndarray, predicted: np.ndarray) -> "Overlap":
        reference, predicted = np.asarray(reference, bool), np.asarray(predicted, bool)
        return cls(int(np.count_nonzero(reference)), int(np.count_nonzero(predicted)),
                   int(np.count_nonzero(reference & predicted)), int(reference.size))

    @property
    def dice(self) -> float:
        total = self.reference + self.predicted
        return 2.0 * self.both / total if total else float("nan")

    @property
    def sensitivity(self) -> float:
        return self.both / self.reference if self.reference else float("nan")

    @property
    def precision(self) -> float:
        return self.both / self.predicted if self.predicted else float("nan")

    @property
    def specificity(self) -> float:
        negatives = self.total - self.reference
        return (negatives - (self.predicted - self.both)) / negatives if negatives else float("nan")

    @property
    def iou(self) -> float:
        union = self.reference + self.predicted - self.both
        return self.both / union if union else float("nan")


def dice(reference: np.ndarray, predicted: np.ndarray) -> float:
    """Dice of two masks; NaN when both are empty."""
    return Overlap.of(reference, predicted).dice
