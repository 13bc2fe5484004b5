"""Per-method throughput (images/s) and peak memory at two input sizes, and on GPU the fraction of
the device's peak FLOP/s that each deep method reaches.

    python benchmarks/throughput.py [--size official|small] [--device cpu|cuda] [--repeats 3]

Each method is measured in its own subprocess so that its peak memory (CPU: peak RSS growth;
CUDA: `torch.cuda.max_memory_allocated`) is not mixed with another's. Deep models use seeded
random weights of the chosen configuration: speed does not depend on the weights' values. Inputs:
SR and joint models take LR sizes (64 and 128 px squares), MEF methods the HR sizes they see in
SR+MEF pipelines at x2 (128 and 256 px).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {"sr": (64, 128), "joint": (64, 128), "mef": (128, 256)}
# Dense peak FLOP/s of known devices (vendor data sheets; bf16 tensor core / fp32 non-tensor).
PEAK_FLOPS = {"H100": {"bf16": 989e12, "fp32": 67e12}, "H200": {"bf16": 989e12, "fp32": 67e12}}

MEASURE = r"""
import json, resource, sys, time, torch
from pipelines.registry import method
name, size, device, side, repeats, precision = sys.argv[1:7]
side, repeats = int(side), int(repeats)
entry = method(name)
cls = entry.load_class()
torch.manual_seed(0)
if not entry.deep:
    model = cls()
elif entry.kind in ("sr", "joint"):
    model = cls.create(scale=2, size=size, seed=0, device=device)
else:
    model = cls.create(size=size, seed=0, device=device)
x = torch.rand(1, 3, side, side, device=device)
y = torch.rand(1, 3, side, side, device=device)
def call():
    if entry.kind == "sr":
        return model.upscale(x)
    if entry.kind == "joint":
        return model.fuse_upscale(x, y)
    return model.fuse(x, y)
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
call()  # warm-up
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
times = []
for _ in range(repeats):
    start = time.perf_counter(); call()
    if device == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
flops = None
if entry.deep:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        call()
    flops = counter.get_total_flops()
peak = (torch.cuda.max_memory_allocated() if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024)
times.sort()
print(json.dumps({"seconds": times[len(times) // 2], "peak_bytes": peak, "flops": flops,
                  "parameters": getattr(model, "num_parameters", 0)}))
"""


def measure(name: str, size: str, device: str, side: int, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, name, size, device, str(side), str(repeats), "fp32"],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from pipelines.registry import METHODS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("official", "small"), default="official")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="*", help="subset of methods (default: all 10 components)")
    args = parser.parse_args()
    device_name = platform.processor() or platform.machine()
    if args.device == "cuda":
        import torch

        device_name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_FLOPS.items() if k in device_name), None)
    print(f"{args.size} configurations on {args.device} ({device_name}, {os.cpu_count()} CPUs), median of "
          f"{args.repeats}, fp32")
    print(f"{'method':<13}{'input':>9}{'images/s':>10}{'peak MiB':>10}{'GFLOP':>9}" + ("  % of fp32 peak" if peak else ""))
    for name, entry in METHODS.items():
        if args.methods and name not in args.methods:
            continue
        for side in SIZES[entry.kind]:
            result = measure(name, args.size, args.device, side, args.repeats)
            if "error" in result:
                print(f"{name:<13}{side:>7}px  error: {result['error']}")
                continue
            gflop = result["flops"] / 1e9 if result["flops"] else None
            line = (f"{name:<13}{side:>7}px{1 / result['seconds']:>10.2f}{result['peak_bytes'] / 2**20:>10.1f}"
                    f"{(f'{gflop:9.1f}' if gflop else '        -')}")
            if peak and gflop:
                line += f"  {100 * result['flops'] / result['seconds'] / peak['fp32']:6.1f}%"
            print(line)


if __name__ == "__main__":
    main()
