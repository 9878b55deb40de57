"""The ``lunglesionquant`` command: a thin door onto the core, like the Slicer module."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .cascade import DEFAULT_MODEL_DIR, Cascade
from .errors import LungLesionQuantError
from .pipeline import segment_batch


def _segment(args: argparse.Namespace) -> int:
    cascade = Cascade(args.models, device=args.device, threads=args.threads)
    bar = tqdm(total=len(args.inputs), unit="case", file=sys.stderr, dynamic_ncols=True)
    state = {"case": ""}

    def on_case(case: str) -> None:
        if state["case"]:
            bar.update(1)
        state["case"] = case
        bar.set_postfix_str(case)

    def progress(stage: str, done: int, total: int) -> None:
        bar.set_postfix_str(f"{state['case']}: {stage} {done}/{total} slices", refresh=False)

    results, failures = segment_batch(args.inputs, args.output, cascade, args.overwrite, on_case, progress,
                                      report=args.report, dicom_seg=args.dicom_seg)
    bar.update(1)
    bar.close()
    for r in results:
        m = r.measurements
        print(f"ok      {r.case}: lung {m['lung_volume_cm3']:.0f} cm3, GGO {m['GGO_extent_pct']:.1f} %, "
              f"Cons {m['Cons_extent_pct']:.1f} %, lesion {m['lesion_extent_pct']:.1f} % ({r.seconds:.1f} s) -> {r.out_dir}")
        for note in r.notes[1:]:
            print(f"        note: {note}")
    for f in failures:
        print(f"FAILED  {f.case}: {f.error}")
    print(f"{len(results) + len(failures)} cases: {len(results)} done, {len(failures)} failed"
          + (f"; table {args.output / 'measurements.csv'}" if results else ""))
    return 1 if failures else 0


def _agreement(args: argparse.Namespace) -> int:
    from .agreement import compare_folders, write_study

    result = compare_folders(args.reference, args.test)
    if result.per_case.empty:
        print(f"lunglesionquant: error: no case of {args.reference} is also in the test folders; expected matching case names", file=sys.stderr)
        return 2
    written = write_study(result, args.output)
    if "table2.csv" in written:
        print(pd.read_csv(written["table2.csv"], index_col=0).to_string())
    for line in (args.output / "notes.txt").read_text().splitlines():
        if line.startswith(("Missing:", "Failed:")):
            print(line)
    print(f"{len(result.per_case)} case comparisons, {len(result.missing)} missing, {len(result.failures)} failed -> {args.output}")
    return 1 if result.failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lunglesionquant", description="Segment and measure COVID-19 lung lesions on chest CT.")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment CTs into LungN / GGO / Cons and measure them",
                         description="Each INPUT (DICOM folder, .dcm, .nii/.nii.gz/.nrrd/.mha, or a .png/.jpg lung-window slice) "
                                     "gets OUT/<case>/ with labels.nii.gz, segmentation.seg.nrrd, measurements.csv, overlay.png; "
                                     "OUT/measurements.csv has a row per case.")
    seg.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    seg.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    seg.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="inference device (default: GPU when available)")
    seg.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all cores)")
    seg.add_argument("--models", type=Path, default=DEFAULT_MODEL_DIR, help="folder with lung.onnx, lesion.onnx, type.onnx")
    seg.add_argument("--overwrite", action="store_true", help="replace earlier results (files edited since are kept as backups)")
    seg.add_argument("--report", action="store_true", help="also write OUT/<case>/report.pdf (overlay montage and table)")
    seg.add_argument("--dicom-seg", action="store_true", help="also write OUT/<case>/segmentation.dcm (DICOM SEG) for DICOM input")
    seg.set_defaults(run=_segment)

    agr = sub.add_parser("agreement", help="compare segmentations with a reference: Dice, distances, volumes, Table 2, Bland-Altman",
                         description="Folders hold case folders as 'segment' writes them (<case>/labels.nii.gz or "
                                     "<case>/segmentation.seg.nrrd) or bare label maps <case>.nii.gz / <case>.seg.nrrd; "
                                     "cases are matched by name. Writes per_case.csv, summary.csv, table2.csv, missing.csv, "
                                     "notes.txt and bland_altman_*.png.")
    agr.add_argument("--reference", type=Path, required=True, metavar="DIR")
    agr.add_argument("--test", type=Path, action="append", required=True, metavar="DIR", help="a test set; repeat for several")
    agr.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    agr.set_defaults(run=_agreement)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except LungLesionQuantError as exc:
        print(f"lunglesionquant: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
