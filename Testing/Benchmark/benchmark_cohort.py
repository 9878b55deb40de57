"""Benchmark cohorts: cases per minute serially and on local Dask clusters of 1 and 2 workers.

Copies of one CT (default: the bundled sample) form the cohort; each configuration segments all
of them into a fresh folder; medians over repeats; the serial run in this process is the
baseline of the ratios. Per-worker memory is read on the workers after their runs.

    python Testing/Benchmark/benchmark_cohort.py [CT] --cases 6 --repeats 2
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from LungLesionQuantLib.segmentation.cascade import Cascade  # noqa: E402
from LungLesionQuantLib.cohort import segment_cohort, threads_per_worker  # noqa: E402
from LungLesionQuantLib.segmenters import SegmenterSpec  # noqa: E402
from LungLesionQuantLib.pipeline import CaseOptions, segment_batch  # noqa: E402
from LungLesionQuantLib.resources import SAMPLE_CT  # noqa: E402


def peak_rss_gb() -> float:
    """This process's peak resident memory (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def worker_rss_gb() -> float:
    """A worker's resident memory after its cases (GB): its models, buffers and Dask itself."""
    import psutil

    return psutil.Process().memory_info().rss / 2**30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct", nargs="?", type=Path, default=SAMPLE_CT)
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    work = Path(tempfile.mkdtemp(prefix="llq-cohort-bench-"))
    inputs = []
    for i in range(args.cases):
        target = work / "in" / f"case{i:03d}{''.join(args.ct.suffixes) if args.ct.is_file() else ''}"
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copy if args.ct.is_file() else shutil.copytree)(args.ct, target)
        inputs.append(target)
    rates: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    cascade = Cascade(device="cpu", threads=os.cpu_count())
    for repeat in range(args.repeats):
        out = work / f"serial{repeat}"
        start = time.perf_counter()
        segment_batch(inputs, out, cascade, CaseOptions())
        rates.setdefault("serial (this process)", []).append(60 * args.cases / (time.perf_counter() - start))
        for workers in (1, 2):
            label = f"Dask, {workers} worker(s) x {threads_per_worker(workers)} thread(s)"
            spec = SegmenterSpec(device="cpu", threads=threads_per_worker(workers))
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                    Client(cluster) as client:
                client.wait_for_workers(workers)
                start = time.perf_counter()  # cluster start-up excluded: a cohort run pays it once
                batch = segment_cohort(inputs, work / f"dask{workers}_{repeat}", spec, CaseOptions(), client)
                rates.setdefault(label, []).append(60 * len(batch.results) / (time.perf_counter() - start))
                memory.setdefault(label, []).extend(client.run(worker_rss_gb).values())
    base = statistics.median(rates["serial (this process)"])
    print(f"{args.cases} copies of {args.ct}; {os.cpu_count()} cores; medians of {args.repeats}")
    for label, values in rates.items():
        rate = statistics.median(values)
        mem = f"; RSS per worker after its cases {max(memory[label]):.2f} GB" if label in memory else f"; peak RSS {peak_rss_gb():.2f} GB"
        print(f"{label:40s} {rate:6.1f} cases/min  ({rate / base:.2f}x serial){mem}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
