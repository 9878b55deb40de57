"""One CT in, the per-case output folder out; and batches that go on past a broken case.

The per-case layout is a public contract (README, "Output layout"):
``labels.nii.gz`` (0 background, 1 LungN, 2 GGO, 3 Cons, input geometry),
``segmentation.seg.nrrd``, ``measurements.csv``, ``overlay.png``, plus ``provenance.json``,
and on request ``report.pdf`` and ``segmentation.dcm`` (DICOM SEG, for DICOM input).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from functools import partial
from typing import Callable

import pandas as pd
import SimpleITK as sitk

from . import __version__
from .outputs.atomic import CaseStage, atomic_path, clear_dead_run
from .runtime import Progress
from .segmentation.cascade import Cascade
from .errors import InputError, LungLesionQuantError, OutputExistsError
from .outputs.case_files import write_label_volume, write_seg_nrrd, write_table
from .outputs.methods import methods_text
from .input.imageio import DICOM_SUFFIXES, IMAGE_SUFFIXES, VOLUME_SUFFIXES, case_name, read_ct, to_lps
from .modalities import CT, CXR, Modality, modality_of
from .input.grey_window import GreyWindow
from .segmentation.preprocessing import hu_to_unit
from .outputs.overlay import write_overlay
from .input.grey_levels import to_unit
from .radiograph.reading import read_radiograph
from .outputs.report import write_report
from .measurement.quality import QUALITY_COLUMN, quality_of
from .measurement.quantify import measurement_columns

LABELS_FILE = "labels.nii.gz"
SEGMENTATION_FILE = "segmentation.seg.nrrd"
MEASUREMENTS_FILE = "measurements.csv"
OVERLAY_FILE = "overlay.png"
PROVENANCE_FILE = "provenance.json"
REPORT_FILE = "report.pdf"
DICOM_SEG_FILE = "segmentation.dcm"
GUARDED_FILES = (SEGMENTATION_FILE, LABELS_FILE)


@dataclass
class CaseResult:
    case: str
    input: str
    out_dir: Path
    measurements: dict
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class CaseFailure:
    case: str
    input: str
    error: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def existing_results(out_dir: Path, overwrite: bool) -> dict[str, str] | None:
    """Refuse a case folder that holds results unless ``overwrite``; then return the checksums
    this tool recorded for them ({} for an empty folder; None where ``provenance.json`` cannot
    be read, so that every earlier file counts as edited and is kept). Changes nothing."""
    present = [name for name in GUARDED_FILES if (out_dir / name).exists()]
    if not present:
        return {}
    if not overwrite:
        raise OutputExistsError(f"{out_dir} already holds {', '.join(present)}; expected an empty case folder (pass --overwrite to replace; edited files are kept as backups)")
    try:
        return dict(json.loads((out_dir / PROVENANCE_FILE).read_text()).get("written", {}))
    except (OSError, ValueError, AttributeError):
        return None


def edited_files(out_dir: Path, recorded: dict[str, str] | None) -> list[str]:
    """Earlier results changed since this tool wrote them (all of them where nothing was recorded)."""
    present = [name for name in GUARDED_FILES if (out_dir / name).exists()]
    return [name for name in present if recorded is None or recorded.get(name) != sha256(out_dir / name)]


def backup_name(name: str, stamp: str) -> str:
    """``segmentation.edited-<stamp>.seg.nrrd`` for ``segmentation.seg.nrrd``."""
    stem, _, suffix = name.partition(".")
    return f"{stem}.edited-{stamp}.{suffix}"


@dataclass
class CaseOutputs:
    """What goes into a case folder besides the CT: its label image, extra files to write, and
    how to write the segmentation file where the caller holds one as is (Slicer: a person's
    edited segmentation node; else it is written from the label image)."""

    label_image: sitk.Image
    write_segmentation: Callable[[Path], Path] | None = None
    findings: dict = field(default_factory=dict)  # the segmenter's (:class:`..runtime.Segmented`)
    warnings: list[str] = field(default_factory=list)
    report: bool = False
    dicom_files: list[str] = field(default_factory=list)
    modality: Modality = CT


def write_case(case: str, ct_image: sitk.Image, outputs: CaseOutputs, out_dir: Path, source: str = "",
               overwrite: bool = False, inference: dict | None = None, extra_provenance: dict | None = None,
               stage: CaseStage | None = None) -> CaseResult:
    """Write the per-case layout for a CT and its labels; returns the measurements.

    Adds ``report.pdf`` when asked, and ``segmentation.dcm`` (DICOM SEG) when the CT's DICOM
    files are given. All files are written and verified in ``stage`` (a :class:`CaseStage` of
    ``out_dir``, opened here when not given) before any earlier result is replaced; edited
    earlier files are kept as backups.
    """
    if stage is None:
        with CaseStage(out_dir) as own_stage:
            return write_case(case, ct_image, outputs, out_dir, source, overwrite, inference, extra_provenance, own_stage)
    start = time.time()
    recorded = existing_results(out_dir, overwrite)
    modality = outputs.modality
    findings = outputs.findings
    measured, warnings = modality.assess(outputs.label_image, outputs.warnings + findings.get("warnings", []))
    row = {"case": case, **measured}
    write_segmentation = outputs.write_segmentation or partial(write_seg_nrrd, outputs.label_image, modality.segments)
    written = [write_label_volume(outputs.label_image, stage.path(LABELS_FILE)), write_segmentation(stage.path(SEGMENTATION_FILE)),
               write_table([row], stage.path(MEASUREMENTS_FILE))]
    ct_lps, label_lps = to_lps(ct_image), to_lps(outputs.label_image)
    hu, labels, spacing = sitk.GetArrayViewFromImage(ct_lps), sitk.GetArrayViewFromImage(label_lps), ct_lps.GetSpacing()
    title = f"{case}: {modality.headline(row)}"
    write_overlay(hu, labels, spacing, stage.path(OVERLAY_FILE), title, hu_to_unit if modality is CT else to_unit, segments=modality.segments)
    written.append(stage.path(OVERLAY_FILE))
    if modality is not CT and (outputs.dicom_files or outputs.report):
        warnings.append("report.pdf and DICOM SEG are written for CT only; the radiograph's results are in the other files")
    elif outputs.dicom_files:
        try:  # highdicom: only for DICOM SEG, and not installed where it cannot run (Slicer 5.10)
            from .outputs.dicom_seg import dicom_seg_unavailable, write_dicom_seg
        except ImportError as exc:
            warnings.append(f"DICOM SEG needs highdicom, which is not installed here ({exc.name} missing): segmentation.dcm was "
                            "not written (the .seg.nrrd holds the same segments)")
        else:
            unavailable = dicom_seg_unavailable()
            if unavailable:
                warnings.append(unavailable)
            else:
                written.append(write_dicom_seg(outputs.label_image, outputs.dicom_files, stage.path(DICOM_SEG_FILE)))
    if outputs.report and modality is CT:
        methods = methods_text(inference) if inference else ""
        written.append(write_report(hu, labels, spacing, row, stage.path(REPORT_FILE), title, warnings, methods))
    edited = edited_files(out_dir, recorded)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    notes = [f"{name} had been changed since it was written (or its record could not be read); kept as {backup_name(name, stamp)}"
             for name in edited]
    provenance = {
        "tool": "LungLesionQuant", "version": __version__, "modality": modality.name, "input": source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "models": (inference or {}).get("models", {}),
        "inference": (inference or {}).get("settings", {}),
        "lung_rules_cm3": findings.get("lung_rules_cm3", {}), **(extra_provenance or {}),
        "methods": methods_text(inference) if inference else "",
        "notes": notes, "warnings": warnings, "written": {p.name: sha256(p) for p in written},
    }
    with atomic_path(stage.path(PROVENANCE_FILE)) as tmp:
        tmp.write_text(json.dumps(provenance, indent=2))
    for name in edited:  # only now, with every new file complete
        (out_dir / name).rename(out_dir / backup_name(name, stamp))
    stage.commit(last=(PROVENANCE_FILE,))
    return CaseResult(case, source, out_dir, row, notes, time.time() - start, warnings)


def segment_case(path: Path, out_root: Path, cascade: Cascade, overwrite: bool = False,
                 progress: Progress | None = None, report: bool = False, dicom_seg: bool = False,
                 window: GreyWindow | None = None) -> CaseResult:
    """Read, segment, measure and write one case into ``out_root/<case>/`` (``window``: the HU
    window of 8-bit slice input, when known). ``cascade`` is the CT cascade or the radiograph
    model (:class:`~.radiograph.segment.RadiographNet`); the input is read as its modality. The
    case folder is locked, checked writable and checked for earlier results before the slow part."""
    start = time.time()
    case = case_name(path)
    out_dir = out_root / case
    modality = modality_of(cascade)
    with CaseStage(out_dir) as stage:
        existing_results(out_dir, overwrite)
        loaded = read_radiograph(path, cascade) if modality is CXR else read_ct(path, window)
        segmented = cascade.apply(loaded.image, progress)
        outputs = CaseOutputs(segmented.labels, findings=segmented.findings, warnings=list(loaded.warnings), report=report,
                              dicom_files=loaded.dicom_files if dicom_seg else [], modality=modality)
        extra = {"window": {"width_hu": loaded.window.width, "level_hu": loaded.window.level, "source": loaded.window.source}} \
            if getattr(loaded, "window", None) else {}
        result = write_case(case, loaded.image, outputs, out_dir, f"{loaded.source} ({loaded.note})", overwrite,
                            cascade.provenance(), extra, stage)
    result.notes.insert(0, loaded.note)
    result.seconds = time.time() - start
    return result


def write_cohort_table(out_root: Path) -> tuple[Path, list[str]]:
    """``OUT/measurements.csv``: one row for every case folder of OUT that has measurements (the
    columns of every modality present: CT columns first, then radiograph columns), and why each
    case table that could not be read (damaged, edited by hand) was left out: one case's file
    never costs the others their table."""
    frames, left_out = [], []
    for path in sorted(out_root.glob(f"*/{MEASUREMENTS_FILE}")):
        try:
            frame = pd.read_csv(path)
            if "case" not in frame.columns or len(frame) != 1:
                raise ValueError(f"{len(frame)} rows, columns {list(frame.columns)[:4]}")
            frame.drop(columns=["case", QUALITY_COLUMN], errors="ignore").apply(pd.to_numeric, errors="raise")
        except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            left_out.append(f"{path} left out of the cohort table: it cannot be read as one case's measurements "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); rerun that case with --overwrite")
            continue
        frames.append(frame)
    present = set().union(*(f.columns for f in frames)) if frames else set()
    columns = [c for modality in (CT, CXR) for c in modality.columns() if c in present] or measurement_columns()
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows = [{"case": str(r["case"]), **{c: float(r.get(c, float("nan"))) for c in columns}, QUALITY_COLUMN: quality}
            for r, quality in zip(table.to_dict("records"), quality_of(table))]
    return write_table(rows, out_root / MEASUREMENTS_FILE), left_out


@dataclass
class BatchResult:
    """What a batch did: the cases done, those that failed (with why), those skipped as complete
    (``--resume``), and those a Ctrl-C left undone."""

    results: list[CaseResult] = field(default_factory=list)
    failures: list[CaseFailure] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # case tables the cohort table could not read


@dataclass(frozen=True)
class CaseOptions:
    """How every case of a batch is run and written (small: it travels to Dask workers)."""

    overwrite: bool = False
    report: bool = False
    dicom_seg: bool = False
    window: GreyWindow | None = None
    resume: bool = False


def plan_cases(paths: list[Path]) -> tuple[list[tuple[str, Path]], list[CaseFailure]]:
    """(case, path) for each input whose case name is usable and unique in the run; failures for the rest."""
    planned: list[tuple[str, Path]] = []
    failures: list[CaseFailure] = []
    seen: dict[str, Path] = {}
    for path in paths:
        case = case_name(path)
        try:
            check_case_name(case, Path(path))
            if case in seen:
                raise InputError(f"case name '{case}' is also that of {seen[case]} in this run; expected distinct names")
        except InputError as exc:
            failures.append(CaseFailure(case, str(path), str(exc)))
            continue
        seen[case] = Path(path)
        planned.append((case, Path(path)))
    return planned, failures


def run_case(case: str, path: Path, out_root: Path, cascade: Cascade, options: CaseOptions,
             progress: Progress | None = None) -> CaseResult | CaseFailure | None:
    """One case of a batch: its result, its failure (never raised), or None when ``options.resume``
    finds it complete. A Ctrl-C is not caught."""
    try:
        overwrite = options.overwrite
        if options.resume:
            if is_complete(out_root / case, cascade.provenance(), options.window):
                clear_dead_run(out_root / case)
                return None
            overwrite = True  # an incomplete or outdated case is redone (edited files are still kept as backups)
        return segment_case(Path(path), out_root, cascade, overwrite, progress, options.report, options.dicom_seg, options.window)
    except LungLesionQuantError as exc:
        return CaseFailure(case, str(path), str(exc))
    except Exception as exc:  # a broken case must not stop the batch; the message names it
        return CaseFailure(case, str(path), f"{type(exc).__name__}: {exc}".splitlines()[0])


def collect(batch: BatchResult, case: str, outcome: CaseResult | CaseFailure | None) -> None:
    """File a case's outcome in the batch."""
    if outcome is None:
        batch.skipped.append(case)
    elif isinstance(outcome, CaseFailure):
        batch.failures.append(outcome)
    else:
        batch.results.append(outcome)


def segment_batch(paths: list[Path], out_root: Path, cascade: Cascade, options: CaseOptions = CaseOptions(),
                  on_case: Callable[[str], None] | None = None, progress: Progress | None = None) -> BatchResult:
    """Segment many inputs one after another; a failing case is recorded and the others go on.
    A Ctrl-C ends the batch cleanly: the cases done are kept (and tabled), the interrupted one
    leaves nothing behind, and the rest are listed as not done."""
    planned, failures = plan_cases(paths)
    batch = BatchResult(failures=failures)
    for index, (case, path) in enumerate(planned):
        if on_case:
            on_case(case)
        try:
            collect(batch, case, run_case(case, path, out_root, cascade, options, progress))
        except KeyboardInterrupt:
            batch.not_done = [str(p) for _c, p in planned[index:]]
            break
    if batch.results or batch.skipped:
        batch.left_out = write_cohort_table(out_root)[1]
    return batch


def is_complete(out_dir: Path, inference: dict, window: GreyWindow | None = None) -> bool:
    """Whether a case folder holds a complete result of these models and settings: every file
    ``provenance.json`` lists is there with its checksum, the layout's files are all there, and
    the models, inference settings and, for 8-bit slices, any given window are the same (for ``--resume``)."""
    try:
        provenance = json.loads((out_dir / PROVENANCE_FILE).read_text())
        written = provenance["written"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    needed = {LABELS_FILE, SEGMENTATION_FILE, MEASUREMENTS_FILE, OVERLAY_FILE}
    if not needed <= set(written) or any(not (out_dir / n).exists() or sha256(out_dir / n) != d for n, d in written.items()):
        return False
    same = json.dumps([provenance.get("models"), provenance.get("inference")], sort_keys=True) == \
        json.dumps([inference.get("models"), inference.get("settings")], sort_keys=True)
    # A window reads 8-bit slices only: a case read in HU (a volume, a DICOM series) recorded
    # none, and the window given to this run has no bearing on it.
    given = {"width_hu": window.width, "level_hu": window.level, "source": window.source} if window else None
    return same and (given is None or "window" not in provenance or provenance["window"] == given)


# Room for the hidden temporary names built from a case name within a file name's 255 bytes.
MAX_CASE_NAME_BYTES = 200


def safe_case_name(name: str) -> str:
    """A folder name for a Slicer volume's name (DICOM volumes are named like '3: CHEST 1.25mm/…'):
    characters other than letters, digits, '.', '-', '_' and spaces become '_'."""
    safe = re.sub(r"[^\w.\- ]", "_", name).strip(" .")
    return safe[:MAX_CASE_NAME_BYTES] or "case"


def check_case_name(case: str, path: Path) -> None:
    """A case name that names a folder inside OUT: not empty, not '.' or '..', no separators,
    short enough for the temporary names built from it."""
    if case in ("", ".", "..") or "/" in case or "\\" in case or "\0" in case:
        raise InputError(f"{path}: gives the case name '{case}'; expected a file or folder name that can name a folder in OUT")
    if len(case.encode()) > MAX_CASE_NAME_BYTES:
        raise InputError(f"{path}: gives a case name of {len(case.encode())} bytes; expected at most {MAX_CASE_NAME_BYTES} (rename the input)")


def case_inputs(folder: Path) -> list[Path]:
    """Each entry of a folder of cases: volume/slice files and subfolders (DICOM series), sorted."""
    if not Path(folder).is_dir():
        raise InputError(f"{folder}: not a folder; expected a folder whose files and subfolders are cases")
    suffixes = VOLUME_SUFFIXES + IMAGE_SUFFIXES + DICOM_SUFFIXES
    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or p.name.lower().endswith(suffixes)))
