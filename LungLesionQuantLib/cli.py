"""The ``lunglesionquant`` command: a thin door onto the core, like the Slicer module."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .segmentation.cascade import DEFAULT_MODEL_DIR
from .segmenters import Segmenter, SegmenterSpec
from .errors import InputError, LungLesionQuantError, OutputError
from .cohort import write_cohort_report
from .modalities import MODALITIES
from .pipeline import BatchResult, CaseOptions, segment_batch
from .radiograph.reading import is_dicom_radiograph
from .input.grey_window import GreyWindow

INTERRUPTED = 130  # the shell's status for Ctrl-C


def _output_folder(path: Path | None) -> None:
    """Refuse an output path that is an existing file, before any work."""
    if path is not None and path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; expected an output folder (new or existing)")


def _segment(args: argparse.Namespace) -> int:
    _output_folder(args.output)
    args.modality = _modality(args.modality, args.inputs)
    options = CaseOptions(args.overwrite, args.report, args.dicom_seg, args.window, args.resume)
    if args.workers or args.scheduler:
        batch = _segment_on_dask(args, options)
    else:
        batch = _segment_serially(args, options)
    results, failures = batch.results, batch.failures
    modality = MODALITIES[args.modality]
    for r in results:
        print(f"ok      {r.case}: {modality.headline(r.measurements)} ({r.seconds:.1f} s) -> {r.out_dir}")
        for note in r.notes[1:]:
            print(f"        note: {note}")
        for warning in r.warnings:
            print(f"        WARNING: {warning}")
    for case in batch.skipped:
        print(f"skipped {case}: complete, same models and settings (--resume)")
    for f in failures:
        print(f"FAILED  {f.case}: {f.error}")
    for reason in batch.left_out:
        print(f"WARNING: {reason}")
    if batch.not_done:
        print(f"INTERRUPTED: {len(batch.not_done)} case(s) not done: {', '.join(batch.not_done)}")
    if results or batch.skipped or failures:
        settings = {"modality": args.modality, "inputs": len(args.inputs), "workers": args.workers, "scheduler": args.scheduler, "retries": args.retries,
                    "resume": args.resume, "overwrite": args.overwrite, "tta": args.tta, "device": args.device,
                    "window": args.window.describe() if args.window else None, "models": str(args.models)}
        write_cohort_report(args.output, batch, settings)
    print(f"{len(results) + len(failures) + len(batch.skipped)} cases: {len(results)} done, {len(failures)} failed"
          + (f", {len(batch.skipped)} skipped as complete" if batch.skipped else "")
          + (f", {len(batch.not_done)} not done (interrupted)" if batch.not_done else "")
          + (f"; table {args.output / 'measurements.csv'}" if results or batch.skipped else ""))
    if batch.not_done:
        return INTERRUPTED
    return 1 if failures else 0


def _segment_serially(args: argparse.Namespace, options: CaseOptions) -> BatchResult:
    cascade = _segmenter(args)
    bar = tqdm(total=len(args.inputs), unit="case", file=sys.stderr, dynamic_ncols=True)
    state = {"case": ""}

    def on_case(case: str) -> None:
        if state["case"]:
            bar.update(1)
        state["case"] = case
        bar.set_postfix_str(case)

    def progress(stage: str, done: int, total: int) -> None:
        bar.set_postfix_str(f"{state['case']}: {stage} {done}/{total} slices", refresh=False)

    batch = segment_batch(args.inputs, args.output, cascade, options, on_case, progress)
    bar.update(0 if batch.not_done else 1)
    bar.close()
    return batch


def _segment_on_dask(args: argparse.Namespace, options: CaseOptions) -> BatchResult:
    """The cases as Dask tasks: on a new local cluster (``--workers``) or a running one (``--scheduler``)."""
    from .cohort import local_client, segment_cohort, threads_per_worker

    try:
        from distributed import Client
    except ImportError:
        raise LungLesionQuantError("--workers/--scheduler need Dask's distributed package; install it (pip install 'dask[distributed]')") from None
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:  # unreachable, or not an address at all
            raise LungLesionQuantError(f"could not reach the Dask scheduler {args.scheduler} ({exc}); expected a running scheduler's address") from None
        threads = args.threads
    else:
        cores = os.cpu_count() or 1
        if args.workers > cores:
            raise InputError(f"--workers {args.workers} on a machine with {cores} cores; expected at most {cores} (each worker "
                             "holds the models, about 0.5 GB, and runs its own inference threads)")
        client = local_client(args.workers)
        threads = args.threads or threads_per_worker(args.workers)
    spec = SegmenterSpec(args.modality, str(args.models), args.device, threads, args.tta)
    print(f"Dask: {len(client.scheduler_info().get('workers', {}))} workers; dashboard {client.dashboard_link}", file=sys.stderr)
    bar = tqdm(total=len(args.inputs), unit="case", file=sys.stderr, dynamic_ncols=True)
    try:
        return segment_cohort(args.inputs, args.output, spec, options, client, args.retries, lambda case: bar.update(1))
    finally:
        bar.close()
        cluster = None if args.scheduler else client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _agreement(args: argparse.Namespace) -> int:
    from .studies.agreement import compare_folders, write_study
    from .studies.observers import compare_observers, named_folder

    _output_folder(args.output)
    tests = args.test or []
    if args.observer:
        if args.reference is not None:
            raise InputError("--observer replaces --reference (each pair's first reading is its reference); expected one of them")
        result = compare_observers([named_folder(text) for text in args.observer], tests)
    elif args.reference is None or not tests:
        raise InputError("expected --reference DIR with --test DIR, or readings as --observer NAME=DIR (repeated) with optional --test DIR")
    else:
        result = compare_folders(args.reference, tests)
    if result.per_case.empty and result.failures:
        raise InputError(f"every matched case failed ({len(result.failures)}), e.g. {result.failures[0]}")
    if result.per_case.empty:
        print("lunglesionquant: error: no case is in both folders of any comparison; expected matching case names", file=sys.stderr)
        return 2
    written = write_study(result, args.output)
    if "table2.csv" in written:
        print(pd.read_csv(written["table2.csv"], index_col=0).to_string())
    for line in (args.output / "notes.txt").read_text().splitlines():
        if line.startswith(("Missing:", "Failed:")):
            print(line)
    print(f"{len(result.per_case)} case comparisons, {len(result.missing)} missing, {len(result.failures)} failed -> {args.output}")
    return 1 if result.failures else 0


def _risk_fit(args: argparse.Namespace) -> int:
    from .studies.risk import fit_study, load_cohort, write_study
    from .studies.stepwise import StepwiseRule
    from .studies.synthetic_cohort import is_synthetic

    _output_folder(args.output)
    if args.select is None and (args.select_by is not None or args.select_p is not None):
        raise InputError("--select-by/--select-p set how stepwise selection works; expected --select backward|forward with them")
    selection = StepwiseRule(args.select, args.select_by or "aic", 0.05 if args.select_p is None else args.select_p) if args.select else None
    frame, notes = load_cohort(args.cohort, args.id_column, args.outcome, args.covariates, args.extent_from, args.score)
    synthetic = is_synthetic(frame[args.id_column])
    study = fit_study(frame, args.id_column, args.outcome, args.covariates, args.score, args.seed, notes, synthetic, selection, args.bootstraps)
    write_study(study, frame, args.output)
    s = study.summary
    print(f"{'SYNTHETIC cohort (ids SYNTHETIC-*), not patients: ' if synthetic else ''}"
          f"{s['n']} patients, {s['events']} with '{args.outcome}'; training {s['split']['train']} ({s['split']['train_events']} events), "
          f"validation {s['split']['validation']} ({s['split']['validation_events']} events), seed {s['seed']}")
    if s["selection"]:
        chosen = s["selection"]
        print(f"Covariates by {chosen['rule']} (training split): kept {', '.join(chosen['selected'])}; "
              f"left out {', '.join(chosen['left_out']) or 'none'}")
        for step in chosen["steps"]:
            print(f"  step {step['step']}: {step['action']} {step['covariate']} (AIC {step['aic_before']:.1f} -> {step['aic_after']:.1f}, "
                  f"likelihood-ratio p {step['lr_p']:.3g})")
        for name, why in chosen.get("could_not_be_fitted", {}).items():
            print(f"  {name} could not enter: {why}")
    print(study.odds_ratios.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for name, m in s["models"].items():
        line = (f"Model {name}: C-statistic (validation) {m['c_statistic']:.3f} [{m['c_statistic_ci'][0]:.3f}, {m['c_statistic_ci'][1]:.3f}], "
                f"training {m['c_statistic_train']:.3f}; calibration slope {m['calibration_validation']['slope']:.2f}")
        if "internal_validation" in m:
            iv = m["internal_validation"]
            line += (f"; optimism-corrected (bootstrap, training split) C {iv['c_corrected']:.3f} (optimism {iv['c_optimism']:.3f}), "
                     f"calibration slope {iv['calibration_slope_corrected']:.2f}")
        if "lr_test_vs_A" in m:
            line += f"; LR test vs A: chi2 {m['lr_test_vs_A']['lr']:.2f}, df {m['lr_test_vs_A']['df']}, p {m['lr_test_vs_A']['p']:.3g}"
        print(line)
    for pair, c in s.get("c_statistic_comparisons", {}).items():
        print(f"C-statistic {pair} (DeLong, validation): {c['auc_first']:.3f} vs {c['auc_second']:.3f}, difference "
              f"{c['difference']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}], p {c['p']:.3g}")
    for key in ("youden_extent", "youden_score"):
        if key in s:
            c = s[key]
            print(f"Youden cut-off ({key[7:]}): {c['cutoff']:.3g}: sensitivity {c['sensitivity']:.2f}, specificity {c['specificity']:.2f} "
                  f"(training); {c['validation_sensitivity']:.2f} / {c['validation_specificity']:.2f} (validation)")
    if s["internal_validation"]:
        print(f"Internal validation: {s['internal_validation']['method']}; {s['internal_validation']['replicates_used']} samples used")
    print(f"Nomogram of model {s['nomogram']['model']}: nomogram.png ({s['nomogram']['scaled_on']} spans 0-100 points)")
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"-> {args.output}")
    return 0


def _risk_synthetic(args: argparse.Namespace) -> int:
    from .studies.risk import check_seed
    from .studies.synthetic_cohort import synthetic_cohort, write_synthetic

    _output_folder(args.output)
    check_seed(args.seed)
    cohort, segment = write_synthetic(synthetic_cohort(args.patients, args.seed), args.output)
    print(f"SYNTHETIC cohort, not patients: {args.patients} drawn from model C of Bartoli et al. 2022, Table 3 (seed {args.seed}) -> {cohort}; "
          f"their lesion extents as 'segment' writes them -> {segment / 'measurements.csv'}")
    return 0


def _risk_predict(args: argparse.Namespace) -> int:
    from .studies.risk import EXTENT, FittedModel, parse_patient, predict_patient, read_extents

    model = FittedModel.load(args.model)
    values = parse_patient(args.patient)
    if args.measurements is not None:
        extents, quality = read_extents(args.measurements)
        if args.case is None and len(extents) != 1:
            raise InputError(f"{args.measurements}: holds {len(extents)} cases ({', '.join(extents.index[:5])}...); "
                             "expected one, or --case naming the patient's case")
        if args.case is not None and args.case not in extents.index:
            raise InputError(f"{args.measurements}: no case '{args.case}'; cases: {', '.join(extents.index[:10])}")
        case = args.case if args.case is not None else extents.index[0]
        if extents[case] != extents[case]:
            raise InputError(f"{args.measurements}: case '{case}' has no lesion extent (quality: {quality[case]}); expected a case "
                             "whose lungs are in the scan")
        values[EXTENT] = float(extents[case])
    result = predict_patient(model, values)
    print(f"Model {model.name}: probability of '{model.outcome}' {result['probability']:.3f} "
          f"(95 % CI {result['ci_low']:.3f}-{result['ci_high']:.3f})" + (" [SYNTHETIC model]" if model.synthetic else ""))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .studies.evaluation import evaluate, format_summary, summarise, write_evaluation

    _output_folder(args.output)
    args.modality = args.modality or "ct"
    if args.modality == "cxr":
        return _evaluate_radiographs(args)
    if args.labels is None:
        raise InputError("evaluate: no --labels given; expected --labels DIR with the reference label files (or --modality cxr with mask folders)")
    cascade = _segmenter(args)
    bar = tqdm(unit="case", file=sys.stderr, dynamic_ncols=True, delay=0.5)  # silent if the folders are refused

    def on_case(case: str) -> None:
        bar.update(1)
        bar.set_postfix_str(case)

    result = evaluate(args.images, args.labels, cascade, args.reference_coding, on_case, args.window)
    bar.close()
    _print_unscored(result.unmatched, result.failures)
    if result.per_case.empty:
        print(f"lunglesionquant: error: no image of {args.images} could be scored against {args.labels}; "
              "expected images and label files with matching names", file=sys.stderr)
        return 2
    summary = summarise(result)
    report = format_summary(summary, result)
    print(report)
    if args.output is not None:
        write_evaluation(result, summary, report, args.output)
        print(f"-> {args.output}")
    return 1 if result.failures else 0


def _print_unscored(unmatched: list[str], failures: list[str]) -> None:
    """The images an evaluation could not score, each named with why."""
    for line in unmatched:
        print(f"unmatched {line}")
    for line in failures:
        print(f"FAILED  {line}")


def _evaluate_radiographs(args: argparse.Namespace) -> int:
    from .radiograph.evaluation import evaluate_radiographs, summarise_radiographs

    net = _segmenter(args)
    bar = tqdm(unit="radiograph", file=sys.stderr, dynamic_ncols=True, delay=0.5)
    result = evaluate_radiographs(args.images, net, args.lung_masks, args.opacity_masks, lambda case: bar.update(1))
    bar.close()
    _print_unscored(result.unmatched, result.failures)
    if result.per_image.empty:
        raise InputError(f"no radiograph of {args.images} could be scored; expected radiographs and masks with matching names")
    summary = summarise_radiographs(result.per_image)
    print("Tang et al. 2020 (4.1): overlap on radiographs with opacity; false opacity % of lung on radiographs without")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        result.per_image.to_csv(args.output / "per_image.csv", index=False)
        summary.to_csv(args.output / "summary.csv", index=False)
        print(f"-> {args.output}")
    return 1 if result.failures else 0


def _segmenter(args: argparse.Namespace) -> Segmenter:
    """The CT cascade, or the radiograph model with ``--modality cxr`` (:mod:`.segmenters`)."""
    return SegmenterSpec(args.modality or "ct", str(args.models), args.device, args.threads, bool(getattr(args, "tta", False))).build()


def _modality(requested: str | None, inputs: list[Path]) -> str:
    """``--modality`` as given; else 'cxr' when every input is a DICOM file whose Modality says
    radiograph (CR/DX), 'ct' otherwise (a radiograph among CTs is then refused by name)."""
    if requested:
        return requested
    return "cxr" if inputs and all(is_dicom_radiograph(p) for p in inputs) else "ct"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"found '{text}'; expected a whole number of 1 or more")
    return value


def _window(text: str) -> GreyWindow:
    """``--window WIDTH/LEVEL`` in HU, e.g. 1500/-600."""
    try:
        width, level = (float(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"found '{text}'; expected WIDTH/LEVEL in HU, e.g. 1500/-600") from None
    if not 100 <= width <= 10000 or not -1500 <= level <= 1500:
        raise argparse.ArgumentTypeError(f"found width {width:g}, level {level:g}; expected a width of 100-10000 HU and a level of -1500..1500 HU")
    return GreyWindow.from_width_level(width, level, "given with --window")


def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="inference device (default: GPU when available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all cores)")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODEL_DIR,
                        help="folder with lung.onnx, lesion.onnx, type.onnx (and radiograph.onnx for --modality cxr)")
    parser.add_argument("--modality", choices=["ct", "cxr"], default=None,
                        help="ct: chest CT (default); cxr: frontal chest radiographs (PNG/JPG/TIFF, DICOM CR/DX), segmented "
                             "into Lung and Opacity. DICOM CR/DX inputs are radiographs without it")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average the lesion and type stages over the left-right mirrored slice "
                             "(about 1.6x the time for +0.002 cross-validated Dice)")
    parser.add_argument("--window", type=_window, default=None, metavar="WIDTH/LEVEL",
                        help="the HU window that 8-bit PNG/JPG slices were exported under (default: estimated from each "
                             "slice's aerated lung and soft tissue; the documented 1392/-500 where none are found)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lunglesionquant", description="Segment and measure COVID-19 lung lesions on chest CT.")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment CTs into LungN / GGO / Cons and measure them",
                         description="Each INPUT (DICOM folder, .dcm, .nii/.nii.gz/.nrrd/.mha, or a .png/.jpg lung-window slice) "
                                     "gets OUT/<case>/ with labels.nii.gz, segmentation.seg.nrrd, measurements.csv, overlay.png; "
                                     "OUT/measurements.csv has a row per case.")
    seg.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    seg.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    _add_inference_options(seg)
    seg.add_argument("--overwrite", action="store_true", help="replace earlier results (files edited since are kept as backups)")
    seg.add_argument("--report", action="store_true", help="also write OUT/<case>/report.pdf (overlay montage and table)")
    seg.add_argument("--dicom-seg", action="store_true", help="also write OUT/<case>/segmentation.dcm (DICOM SEG) for DICOM input")
    seg.add_argument("--resume", action="store_true",
                     help="skip cases whose outputs are complete and were made by the same models and settings")
    seg.add_argument("--workers", type=_positive, default=0, metavar="N",
                     help="run the cases on a local Dask cluster of N worker processes (threads split between them)")
    seg.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the cases on a running Dask cluster (e.g. tcp://host:8786; dask-jobqueue for SLURM, the Dask Helm chart for Kubernetes)")
    seg.add_argument("--retries", type=int, default=2, metavar="N", help="with Dask: retry a case whose worker died, at most N times (default 2)")
    seg.set_defaults(run=_segment)

    agr = sub.add_parser("agreement", help="compare segmentations with a reference: Dice, distances, volumes, Table 2, Bland-Altman",
                         description="Folders hold case folders as 'segment' writes them (<case>/labels.nii.gz or "
                                     "<case>/segmentation.seg.nrrd) or bare label maps <case>.nii.gz / <case>.seg.nrrd; "
                                     "cases are matched by name. Writes per_case.csv, summary.csv, table2.csv, missing.csv, "
                                     "notes.txt and bland_altman_*.png. Either --reference and --test, or several readings "
                                     "--observer O1a=DIR --observer O1b=DIR --observer O2=DIR ... (with --test: the software), "
                                     "laid out like Bartoli et al.'s Table 2.")
    agr.add_argument("--reference", type=Path, default=None, metavar="DIR")
    agr.add_argument("--test", type=Path, action="append", default=None, metavar="DIR",
                     help="a test set (with --observer: the software's segmentations); repeat for several")
    agr.add_argument("--observer", action="append", default=None, metavar="NAME=DIR",
                     help="one observer's reading; repeat. Names ending in a letter after a digit (O1a, O1b) are readings of "
                          "one observer (intra-observer pairs); every other pair of readings is inter-observer")
    agr.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    agr.set_defaults(run=_agreement)

    ev = sub.add_parser("evaluate", help="accuracy of the cascade on labelled images: Dice, sensitivity, specificity, volume errors",
                        description="Segments each image of --images (PNG/JPG slices, volume files, DICOM folders) and compares it "
                                    "with the label file of the same name in --labels (PNG, NIfTI/NRRD label maps, .seg.nrrd, or "
                                    "case folders as 'segment' writes them). Prints per-label Dice (mean ± SD over slices, both "
                                    "rules for slices empty in both masks), sensitivity, specificity, volume/extent MAE and bias.")
    ev.add_argument("--images", type=Path, required=True, metavar="DIR")
    ev.add_argument("--labels", type=Path, default=None, metavar="DIR", help="CT: the reference label files (required for CT)")
    ev.add_argument("--lung-masks", type=Path, default=None, metavar="DIR",
                    help="--modality cxr: reference lung masks (PNG, non-zero = lung), named as the radiographs")
    ev.add_argument("--opacity-masks", type=Path, default=None, metavar="DIR",
                    help="--modality cxr: reference opacity (infection) masks; an empty mask = a radiograph without opacity")
    ev.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                    help="also write per_slice.csv, per_case.csv, summary.csv, report.txt and predictions/")
    ev.add_argument("--reference-coding", choices=["auto", "ggo-cons", "llq", "lung", "lesion"], default="auto",
                    help="reference values: ggo-cons 0/1 GGO/2 Cons; llq 0/1 LungN/2 GGO/3 Cons; lung or lesion: any non-zero; "
                         "auto (default): ggo-cons for PNG, llq otherwise")
    _add_inference_options(ev)
    ev.set_defaults(run=_evaluate)

    risk = sub.add_parser("risk", help="logistic risk models of an outcome (clinical covariates, score, lesion extent)")
    risk_sub = risk.add_subparsers(dest="risk_command", required=True)
    fit = risk_sub.add_parser("fit", help="fit models A (covariates), B (+ score), C (+ lesion extent) on a 70/30 split")
    fit.add_argument("--cohort", type=Path, required=True, metavar="CSV")
    fit.add_argument("--id-column", required=True, metavar="COL")
    fit.add_argument("--outcome", required=True, metavar="COL", help="binary 0/1")
    fit.add_argument("--covariates", nargs="+", required=True, metavar="COL", help="a numeric 'age' column is banded 18-44/45-64/>64")
    fit.add_argument("--extent-from", type=Path, default=None, metavar="OUT", help="output folder of 'segment' (cases matched to ids)")
    fit.add_argument("--score", default=None, metavar="COL", help="a radiologist's severity score column (model B)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--select", choices=["backward", "forward"], default=None,
                     help="stepwise selection of the covariates on the training split (the score and extent are always kept); "
                          "the rule and each step are printed and in summary.json")
    fit.add_argument("--select-by", choices=["aic", "p"], default=None,
                     help="with --select: AIC (default), or the likelihood-ratio p-value against --select-p")
    fit.add_argument("--select-p", type=float, default=None, metavar="P",
                     help="with --select-by p: forward adds while p < P, backward removes while p >= P (default 0.05)")
    fit.add_argument("--bootstraps", type=int, default=200, metavar="N",
                     help="Harrell's optimism-corrected C-statistic and calibration slope from N bootstrap samples of the "
                          "training split, selection repeated in each (default 200, seeded by --seed; 0: skip)")
    fit.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    fit.set_defaults(run=_risk_fit)
    synthetic = risk_sub.add_parser("synthetic", help="write a SYNTHETIC cohort (not patients) drawn from Bartoli et al.'s Table 3",
                                    description="Writes OUT/SYNTHETIC_cohort.csv (ID, AGE, SEX, comorbidities, OUTCOME) and "
                                                "OUT/SYNTHETIC_segment/measurements.csv (their lesion extents) for 'risk fit'.")
    synthetic.add_argument("--patients", type=_positive, default=1621, metavar="N", help="how many (default 1621, as the paper's cohort)")
    synthetic.add_argument("--seed", type=int, default=1)
    synthetic.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    synthetic.set_defaults(run=_risk_synthetic)
    predict = risk_sub.add_parser("predict", help="apply a fitted model.json to one patient")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("--patient", nargs="*", default=[], metavar="NAME=VALUE", help="covariate values, e.g. AGE=63 SEX=M")
    predict.add_argument("--measurements", type=Path, default=None, help="the patient's measurements.csv (for the lesion extent)")
    predict.add_argument("--case", default=None, help="the patient's case in --measurements when it holds several")
    predict.set_defaults(run=_risk_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; errors end as one line on stderr (exit 2), Ctrl-C as exit 130. An
    unexpected error is one line too; ``LLQ_DEBUG=1`` shows its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("lunglesionquant: interrupted", file=sys.stderr)
        return INTERRUPTED
    except LungLesionQuantError as exc:
        print(f"lunglesionquant: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("LLQ_DEBUG"):
            raise
        first = (str(exc).splitlines() or [""])[0][:300]
        print(f"lunglesionquant: error: unexpected {type(exc).__name__}: {first} (LLQ_DEBUG=1 shows where)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
