"""Quality flags: a doubt about a case travels with its numbers into the table, not only to the terminal.

Every plausibility check (:mod:`.plausibility` for CT, :mod:`..radiograph.measure` for
radiographs, the cascade's lung rules) returns :class:`..runtime.QualityFlag` s. A flag is the warning a person reads (it *is* that
text) and a short stable code for the ``quality`` column of ``measurements.csv``, which every
cohort analysis reads ("ok" when nothing is in doubt). Where the lungs are not (fully) in the
image — no lung, a lung volume no adult has — a share of the lung means nothing, so the
extent columns (``*_pct``) are left empty and the flag says why; volumes and areas stay, as
what the image shows.
"""
from __future__ import annotations

import math

import pandas as pd

from ..runtime import QualityFlag

QUALITY_COLUMN = "quality"
QUALITY_OK = "ok"
# Tables written before the quality column existed: their quality is unknown, not "ok".
QUALITY_UNKNOWN = "not assessed"


def with_quality(row: dict, flags: list[str]) -> dict:
    """``row`` with its ``quality`` column (the flags' codes, ';'-joined, or "ok"), and its
    extent columns emptied where a flag withholds them."""
    flags = [f for f in flags if isinstance(f, QualityFlag)]
    if any(f.withholds_extent for f in flags):
        row = {k: (math.nan if k.endswith("_pct") else v) for k, v in row.items()}
    codes = list(dict.fromkeys(f.code for f in flags))
    return {**row, QUALITY_COLUMN: ";".join(codes) if codes else QUALITY_OK}


def quality_of(table: pd.DataFrame) -> pd.Series:
    """The ``quality`` column of a measurements table, :data:`QUALITY_UNKNOWN` where it has none."""
    if QUALITY_COLUMN not in table:
        return pd.Series(QUALITY_UNKNOWN, index=table.index)
    return table[QUALITY_COLUMN].fillna(QUALITY_UNKNOWN).astype(str)
