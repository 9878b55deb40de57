"""Benchmark the cascade on a real CT: the product's settings against baselines in the same process.

Reports medians over repeats of the end-to-end segmentation (read excluded, reported apart)
and of each stage's network time, inputs/s and the peak resident memory, for the product
(onnxruntime), the other test-time-augmentation setting (``--tta``), and the same networks
in eager PyTorch, with the ratios. A GPU is used when onnxruntime and torch offer one
(``--device``).

    python Testing/Benchmark/benchmark_cascade.py ../shared/data/dicom/ricord_1a_000082
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from LungLesionQuantLib.segmentation.cascade import LEFT_RIGHT, Cascade  # noqa: E402
from LungLesionQuantLib.input.imageio import read_ct, to_lps  # noqa: E402
from LungLesionQuantLib.training.network import unet_from_onnx  # noqa: E402


class PeakRSS:
    """Highest resident set size seen by a sampling thread while a block runs (Linux)."""

    def __init__(self) -> None:
        self.peak = 0

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @contextmanager
    def watch(self):
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                self.peak = max(self.peak, self.now())
                time.sleep(0.005)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


class TorchStage:
    """A stage with the ONNX stage's interface, run by eager PyTorch."""

    def __init__(self, onnx_stage, path: Path, device: str) -> None:
        self.name, self.size, self.classes = onnx_stage.name, onnx_stage.size, onnx_stage.classes
        self.device = torch.device(device)
        self.net = unet_from_onnx(path).to(self.device)

    @torch.inference_mode()
    def probabilities(self, batch_input: np.ndarray, batch_size: int, progress=None, flips: tuple[int, ...] = (), keep=None) -> np.ndarray:
        def softmax(x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(x), dim=1)

        outs = []
        for s in range(0, batch_input.shape[0], batch_size):
            x = torch.from_numpy(batch_input[s:s + batch_size]).to(self.device)
            probs = softmax(x)
            for axis in flips:
                probs += softmax(x.flip(axis)).flip(axis)
            outs.append((keep or (lambda p: p))((probs / (1 + len(flips))).cpu().numpy()))
        return np.concatenate(outs)


class Timed:
    """Wraps a stage to add up its network seconds and slices."""

    def __init__(self, stage) -> None:
        self.stage, self.name, self.size, self.classes = stage, stage.name, stage.size, stage.classes
        self.seconds, self.slices = 0.0, 0

    def probabilities(self, batch_input, batch_size, progress=None, flips=(), keep=None):
        start = time.perf_counter()
        out = self.stage.probabilities(batch_input, batch_size, flips=flips, keep=keep)
        self.seconds += time.perf_counter() - start
        self.slices += batch_input.shape[0]
        return out


def run(cascade: Cascade, hu: np.ndarray, spacing_zyx: tuple[float, float, float], stages: dict, repeats: int) -> dict:
    totals, per_stage = [], {name: [] for name in stages}
    slices = {}
    memory = PeakRSS()
    with memory.watch():
        cascade.models = {name: Timed(stage) for name, stage in stages.items()}
        cascade.segment(hu, spacing_zyx=spacing_zyx)  # warm-up
        for _ in range(repeats):
            cascade.models = {name: Timed(stage) for name, stage in stages.items()}
            start = time.perf_counter()
            labels = cascade.segment(hu, spacing_zyx=spacing_zyx)
            totals.append(time.perf_counter() - start)
            for name, timed in cascade.models.items():
                per_stage[name].append(timed.seconds)
                slices[name] = timed.slices
    return {"total": statistics.median(totals), "stages": {n: statistics.median(v) for n, v in per_stage.items()},
            "slices": slices, "peak_rss_gb": memory.peak / 2**30, "labels": labels}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    image = to_lps(read_ct(args.ct).image)
    hu = sitk.GetArrayFromImage(image)
    spacing_zyx = image.GetSpacing()[::-1]
    read_s = time.perf_counter() - start
    cascade = Cascade(device="cpu" if args.device == "cpu" else "auto", threads=args.threads)
    onnx_stages = dict(cascade.models)
    torch_stages = {n: TorchStage(s, cascade.paths[n], args.device) for n, s in onnx_stages.items()}
    print(f"CT {args.ct}: {hu.shape[0]} slices of {hu.shape[1]}x{hu.shape[2]}; read {read_s:.1f} s; "
          f"{args.threads} threads; device {args.device}; onnxruntime {cascade.providers[0]}; medians of {args.repeats}")
    product = run(cascade, hu, spacing_zyx, onnx_stages, args.repeats)
    flips = cascade.flips
    cascade.flips = () if flips else LEFT_RIGHT  # the other test-time-augmentation setting
    other = run(cascade, hu, spacing_zyx, onnx_stages, args.repeats)
    other_name = "no flips" if flips else "--tta"
    cascade.flips = flips
    eager = run(cascade, hu, spacing_zyx, torch_stages, args.repeats)
    print(f"product: onnxruntime, test-time flips {flips or 'none'}; in the same process: onnxruntime with {other_name}, "
          "and eager PyTorch (same weights, read back from the ONNX files) with the product's settings")
    print(f"{'':26s}{'product':>10s}{other_name:>12s}{'eager torch':>14s}")
    for name in onnx_stages:
        o, f, t = (r["stages"][name] for r in (product, other, eager))
        n = product["slices"][name]
        print(f"stage {name:8s} {n:4d} inputs {o:8.2f} s {f:9.2f} s {t:11.2f} s   torch/ort {t / o:.2f}x ({n / o:.0f} inputs/s)")
    post = product["total"] - sum(product["stages"].values())
    print(f"pre/post-processing       {post:8.2f} s")
    o, f, t = (r["total"] for r in (product, other, eager))
    print(f"end to end (no read)      {o:8.2f} s {f:9.2f} s {t:11.2f} s   {other_name}/product {f / o:.2f}x, torch/ort {t / o:.2f}x "
          f"({hu.shape[0] / o:.1f} slices/s)")
    print(f"peak RSS                  {product['peak_rss_gb']:8.2f} GB {other['peak_rss_gb']:6.2f} GB {eager['peak_rss_gb']:8.2f} GB (process high-water mark)")
    agree = float((product["labels"] == eager["labels"]).mean())
    print(f"label agreement onnxruntime vs torch: {100 * agree:.4f} % of voxels; "
          f"product vs {other_name}: {100 * float((product['labels'] == other['labels']).mean()):.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
