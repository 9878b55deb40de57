"""Benchmark the radiograph path on real radiographs: per radiograph, the product's whole case
(read + view check + network + measure + the per-case files) against the network alone (the
baseline) in the same process; medians over the radiographs, and their ratio. The target of
issue 15 is at most 1 s per radiograph on the 2-core CPU.

    python Testing/Benchmark/benchmark_radiograph.py ../shared/data/cxr_covid_qu_ex/COVID-19/images --count 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from LungLesionQuantLib.pipeline import segment_case  # noqa: E402
from LungLesionQuantLib.radiograph.reading import read_radiograph  # noqa: E402
from LungLesionQuantLib.radiograph.segment import RadiographNet  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".dcm"))[: args.count]
    net = RadiographNet(device="cpu", threads=args.threads)
    net.labels(np.asarray(read_radiograph(paths[0]).grey, np.float32))  # warm-up
    network, whole = [], []
    with tempfile.TemporaryDirectory() as out:
        for path in paths:
            grey = np.asarray(read_radiograph(path).grey, np.float32)
            start = time.perf_counter()
            net.labels(grey)
            network.append(time.perf_counter() - start)
            start = time.perf_counter()
            segment_case(path, Path(out), net)
            whole.append(time.perf_counter() - start)
    size = read_radiograph(paths[0]).grey.shape
    print(f"{len(paths)} radiographs ({size[1]}x{size[0]} px), {args.threads} threads")
    print(f"network alone (baseline): median {statistics.median(network) * 1000:.0f} ms")
    print(f"whole case (read, view check, network, measures, labels.nii.gz, .seg.nrrd, CSV, overlay PNG, provenance): "
          f"median {statistics.median(whole) * 1000:.0f} ms; ratio to the network {statistics.median(whole) / statistics.median(network):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
