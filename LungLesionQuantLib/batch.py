"""Headless batch run inside Slicer (or any Python with the core installed):

    Slicer --no-main-window --python-script LungLesionQuantLib/batch.py -- \
        --input CT1.nii.gz DICOM_FOLDER ... [--input-dir FOLDER_OF_CASES] --output OUT
    python -m LungLesionQuantLib.batch --input ... --output OUT

It lives in the core, not in the module folder, where Slicer would load it as a module.
Writes exactly the per-case layout of ``lunglesionquant segment``, goes on past a broken
case, and exits with status 0 (all done), 1 (some case failed) or 2 (usage or setup error).
"""
from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="LungLesionQuantLib.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Every other option is that of 'lunglesionquant segment' (--device, --threads, --models, "
                                            "--modality, --tta, --window, --overwrite, --resume, --report, --dicom-seg, "
                                            "--workers, --scheduler, --retries), passed through unchanged.")
    parser.add_argument("--input", nargs="*", default=[], help="CT files or DICOM folders, one case each")
    parser.add_argument("--input-dir", action="append", default=[], help="a folder whose every file / subfolder is a case")
    parser.add_argument("--output", required=True)
    args, segment_options = parser.parse_known_args([a for a in argv if a != "--"])

    from LungLesionQuantLib.dependencies import missing_requirements

    missing = missing_requirements("batch")
    if missing:
        print(f"LungLesionQuantLib.batch: missing Python packages {', '.join(missing)}; expected them installed "
              "(open the LungLesionQuant module once in Slicer and accept the install)", file=sys.stderr)
        return 2
    from LungLesionQuantLib.cli import main
    from LungLesionQuantLib.errors import LungLesionQuantError
    from LungLesionQuantLib.pipeline import case_inputs

    try:
        inputs = list(args.input) + [str(p) for folder in args.input_dir for p in case_inputs(folder)]
    except LungLesionQuantError as exc:
        print(f"LungLesionQuantLib.batch: error: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        parser.error("no cases: give --input and/or --input-dir")
    return main(["segment", *inputs, "-o", args.output, *segment_options])


def exit_with(status: int) -> None:
    """Leave Slicer (its application object) or plain Python with ``status``."""
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        slicer.util.exit(status)
    else:
        sys.exit(status)


if __name__ == "__main__":
    try:
        status = run(sys.argv[1:])
    except SystemExit as exc:  # argparse errors and --help
        status = exc.code if isinstance(exc.code, int) else 2
    exit_with(status)
