"""Benchmark the whole ``lunglesionquant segment`` process as a user runs it: import, read,
segment, measure, write, exit. Wall seconds, CPU seconds and peak memory of each run (from the
kernel's accounting of the child process), medians over repeats; with ``--baseline`` another
checkout of this repository (an older commit, e.g. ``git worktree add /tmp/base <commit>``) runs
the same input alternately, run by run, with the ratios — the only fair comparison on a
machine whose load changes.

    python Testing/Benchmark/benchmark_command.py ../shared/data/dicom/ricord_1a_000082 --repeats 5 [--baseline /tmp/base]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_once(checkout: Path, source: Path, threads: int | None) -> dict[str, float]:
    """One whole process on ``source`` from ``checkout``'s code; its wall and CPU seconds and peak RSS."""
    out = Path(tempfile.mkdtemp(prefix="llq_bench_"))
    command = [sys.executable, "-m", "LungLesionQuantLib.cli", "segment", str(source.resolve()), "-o", str(out), "--device", "cpu"]
    command += ["--threads", str(threads)] if threads else []
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as printed:
        process = subprocess.Popen(command, cwd=checkout, env=env, stdout=printed, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        printed.seek(0)
        lines = printed.read().decode(errors="replace").strip().splitlines()
    shutil.rmtree(out, ignore_errors=True)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{checkout}: the command failed: {' / '.join(lines[-2:]) or status}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_gb": usage.ru_maxrss * 1024 / 1e9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="a CT (DICOM folder or volume file)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout of this repository to pair with")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    run_once(REPO, args.input, args.threads)  # warm the file cache
    for _ in range(args.repeats):
        runs["this"].append(run_once(REPO, args.input, args.threads))
        if args.baseline:
            runs["baseline"].append(run_once(args.baseline, args.input, args.threads))
    print(f"{args.input}: whole process, median of {args.repeats} (cpu count {os.cpu_count()}, threads {args.threads or 'all'})")
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items() if rs}
    for name, m in medians.items():
        print(f"  {name:8s} wall {m['wall_s']:.2f} s  cpu {m['cpu_s']:.2f} s  peak {m['peak_gb']:.2f} GB")
    if args.baseline:
        ratios = {k: statistics.median(a[k] / b[k] for a, b in zip(runs["this"], runs["baseline"])) for k in runs["this"][0]}
        print("  ratio this / baseline (median of paired runs): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
