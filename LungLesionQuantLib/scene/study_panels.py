"""What the Slicer module's study panels do to a scene, callable without the GUI: the cohort
agreement study and the risk panel (fit, odds-ratio table, this patient's probability).

Apart from :mod:`scene` because these need the statistics packages (statsmodels, pingouin,
scikit-learn), which segmenting does not.
"""
from __future__ import annotations

from pathlib import Path

import slicer

from . import mrml
from ..studies.agreement import compare_folders, summarise, table2, write_study
from ..studies.risk import EXTENT, FittedModel, fit_study, load_cohort, parse_patient, predict_patient
from ..studies.risk import write_study as write_risk_study


def compare_folders_to_table(scene, reference: Path, test: Path, output: Path, table_node=None):
    """The cohort study of ``lunglesionquant agreement`` (files in ``output``), its Table-2
    summary as a table node. Returns (table, written files, CohortComparison)."""
    result = compare_folders(Path(reference), [Path(test)])
    written = write_study(result, Path(output))
    rows = table2(summarise(result.per_case)).reset_index().to_dict("records") if len(result.per_case) else []
    table_node = mrml.table_node(scene, rows, scene.GenerateUniqueName("agreement summary"), table_node)
    return table_node, written, result


def fit_risk_to_table(scene, cohort: Path, id_column: str, outcome: str, covariates: list[str],
                      extent_from: Path | None, score: str | None, output: Path, table_node=None):
    """``lunglesionquant risk fit`` (files in ``output``), its odds ratios as a table node.
    Returns (table, written files, RiskStudy)."""
    frame, notes = load_cohort(Path(cohort), id_column, outcome, covariates, Path(extent_from) if extent_from else None, score)
    study = fit_study(frame, id_column, outcome, covariates, score, notes=notes)
    written = write_risk_study(study, frame, Path(output))
    table_node = mrml.table_node(scene, study.odds_ratios.to_dict("records"), scene.GenerateUniqueName("odds ratios"), table_node)
    return table_node, written, study


def predict_from_table(model_path: Path, items: list[str], measurements_table=None) -> tuple[dict, FittedModel]:
    """A fitted model applied to typed ``NAME=VALUE`` items, the lesion extent taken from the
    measurements table node when the model needs it and it was not typed."""
    model = FittedModel.load(Path(model_path))
    values = parse_patient(items)
    if EXTENT in [c.name for c in model.codings] and EXTENT not in values and measurements_table is not None:
        values[EXTENT] = float(slicer.util.dataframeFromTable(measurements_table)[EXTENT].iloc[0])
    return predict_patient(model, values), model
