"""Cohorts on a Dask cluster, and the cohort report.

One Dask task is one case — read, segment, write — with inputs and outputs on a path every
worker sees; only paths, options and the small result travel through the scheduler. Each
worker process loads the models once (:func:`.segmenters.loaded`) and keeps them for all its
cases. A worker that dies is replaced by Dask and its case retried (``retries``); a case that
keeps killing workers is then reported like any broken case. The per-case writes are atomic and
locked (:class:`atomic.CaseStage`), so a retried or interrupted case is never half-written.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .measurement.quality import QUALITY_COLUMN, QUALITY_OK, quality_of
from .outputs.atomic import atomic_path
from .segmenters import SegmenterSpec, loaded
from .outputs.figures import new_figure, save_png
from .pipeline import (MEASUREMENTS_FILE, BatchResult, CaseFailure, CaseOptions, collect, plan_cases, run_case,
                       write_cohort_table)

REPORT_PNG = "cohort_report.png"
REPORT_JSON = "cohort_report.json"


def case_task(case: str, path: str, out_root: str, spec: SegmenterSpec, options: CaseOptions):
    """The Dask task of one case (runs on a worker)."""
    return run_case(case, Path(path), Path(out_root), loaded(spec), options)


def threads_per_worker(workers: int) -> int:
    """Inference threads per worker so that the workers together use the cores, no more."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def segment_cohort(paths: list[Path], out_root: Path, spec: SegmenterSpec, options: CaseOptions, client,
                   retries: int = 2, on_done: Callable[[str], None] | None = None,
                   task: Callable = case_task) -> BatchResult:
    """Segment the cases on a Dask ``client``; results come back as they finish. A Ctrl-C
    cancels what has not finished (those cases are named as not done)."""
    from distributed import as_completed

    planned, failures = plan_cases(paths)
    batch = BatchResult(failures=failures)
    futures = {client.submit(task, case, str(path), str(out_root), spec, options, key=f"llq-case-{i}-{case}",
                             retries=retries, pure=False): (case, path) for i, (case, path) in enumerate(planned)}
    pending = dict(futures)
    try:
        for future in as_completed(futures):
            case, path = pending.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # the task itself died (e.g. KilledWorker after the retries)
                outcome = CaseFailure(case, str(path), f"the worker died {retries + 1} times on this case "
                                                       f"({type(exc).__name__}); expected a case a worker can finish")
            collect(batch, case, outcome)
            if on_done:
                on_done(case)
    except KeyboardInterrupt:
        client.cancel(list(pending))
        batch.not_done = [str(path) for _case, path in pending.values()]
    if batch.results or batch.skipped:
        batch.left_out = write_cohort_table(out_root)[1]
    return batch


def local_client(workers: int):
    """A client of a new local Dask cluster of ``workers`` processes, one task at a time each
    (the inference runs its own threads inside: :func:`threads_per_worker`)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


# Distributions drawn in the cohort report: those of the modalities in the table.
REPORT_PANELS = {"lesion_extent_pct": "CT lesion extent (% of lung)", "lung_volume_cm3": "CT lung volume (cm³)",
                 "opacity_pct": "radiograph opacity (% of lung)", "lung_area_mm2": "radiograph lung area (mm²)"}


def _flagged(table: pd.DataFrame) -> dict[str, str]:
    """Case -> quality flags of every case of the cohort table that is not "ok"."""
    if QUALITY_COLUMN not in table:
        return {}
    quality = quality_of(table)
    flagged = quality != QUALITY_OK
    return dict(zip(table.loc[flagged, "case"].astype(str), quality[flagged]))


def write_cohort_report(out_root: Path, batch: BatchResult, settings: dict) -> dict[str, Path]:
    """``cohort_report.png`` (distributions of lesion extent and lung volume, or of radiograph
    opacity and lung area, over the cohort table) and ``cohort_report.json`` (counts, failed cases with their reasons, the settings)."""
    table_path = out_root / MEASUREMENTS_FILE
    table = pd.read_csv(table_path) if table_path.exists() else pd.DataFrame(columns=list(REPORT_PANELS)[:2])
    panels = {c: label for c, label in REPORT_PANELS.items() if c in table and table[c].notna().any()} or dict(list(REPORT_PANELS.items())[:2])
    fig = new_figure(figsize=(4.5 * len(panels), 3.8))
    for ax, (column, label) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels.items()):
        values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy() if column in table else np.array([])
        if values.size:
            ax.hist(values, bins=min(30, max(5, values.size)), color="#4c72b0")
            ax.axvline(float(np.median(values)), color="k", lw=1, label=f"median {np.median(values):.1f}")
            ax.legend(fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("cases")
    flagged = len(_flagged(table))
    fig.suptitle(f"{len(table)} cases in {out_root.name} ({flagged} with quality flags, extents withheld where the lungs "
                 f"were not in the image); this run: {len(batch.results)} done, "
                 f"{len(batch.skipped)} complete already, {len(batch.failures)} failed", fontsize=10)
    save_png(fig, out_root / REPORT_PNG)
    report = {"cases_in_table": int(len(table)), "done": [r.case for r in batch.results], "skipped_complete": batch.skipped,
              "failed": [asdict(f) for f in batch.failures], "not_done": batch.not_done,
              "left_out_of_table": batch.left_out, "quality_flagged": _flagged(table), "settings": settings,
              "python": sys.version.split()[0]}
    with atomic_path(out_root / REPORT_JSON) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    return {REPORT_PNG: out_root / REPORT_PNG, REPORT_JSON: out_root / REPORT_JSON}
