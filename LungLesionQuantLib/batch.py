"""Headless batch run inside Slicer (or any Python with the core installed):

    Slicer --no-main-window --python-script LungLesionQuantLib/batch.py -- \
        --input CT1.nii.gz DICOM_FOLDER ... [--input-dir FOLDER_OF_CASES] --output OUT
    python -m LungLesionQuantLib.batch --input ... --output OUT

It lives in the core, not in the module folder, where Slicer would load it as a module.
Writes exactly the per-case layout of ``lunglesionquant segment``, goes on past a broken
case, and always exits — Slicer too — with status 0 (all done), 1 (some case failed), 2 (usage
or setup error: a missing package is named; ``--install-missing`` installs it) or 3 (an
unexpected error, its traceback printed).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

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
    parser.add_argument("--install-missing", action="store_true",
                        help="pip-install the packages the batch needs and lacks (every installed package held at its version)")
    args, segment_options = parser.parse_known_args([a for a in argv if a != "--"])

    from LungLesionQuantLib.dependencies import install, missing_requirements

    missing = missing_requirements("batch") + (missing_requirements("dicom-seg") if "--dicom-seg" in segment_options else [])
    if missing and args.install_missing:
        install(missing)
        missing = [name for name in missing if name in missing_requirements("batch") + missing_requirements("dicom-seg")]
    if missing:
        print(f"LungLesionQuantLib.batch: missing Python packages {', '.join(missing)}; expected them installed "
              "(add --install-missing, or open the LungLesionQuant module in Slicer and accept the install)", file=sys.stderr)
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
    status = 3
    try:
        status = run(sys.argv[1:])
    except SystemExit as exc:  # argparse errors and --help
        status = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 — anything else (a pip failure, a bug): said, and Slicer still exits
        traceback.print_exc()
        print("LungLesionQuantLib.batch: stopped by the unexpected error above (exit status 3)", file=sys.stderr)
    finally:
        exit_with(status)
