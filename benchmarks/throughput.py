"""Per-method throughput (images/s), peak memory and FLOPs at two input sizes, on GPU the fraction
of the device's peak FLOP/s that each deep method reaches, and the overhead of the benchmark
harness around the models.

    python benchmarks/throughput.py [--size official|small] [--device cpu|cuda] [--repeats 3]
        [--precision fp32|bf16|fp16] [--batch 1] [--methods NAME ...]
        [--no-harness] [--executors local,ray] [--harness-scenes 4] [--harness-size 128]

Per-method table. Each method is measured in its own subprocess so that its peak memory is not
mixed with another's. Deep models use seeded random weights of the chosen configuration: speed
does not depend on the weights' values. Inputs are (batch, 3, side, side): SR and joint models
take LR sides (64 and 128 px), MEF methods the HR sides they see in SR+MEF pipelines at x2 (128
and 256 px). After one warm-up call, each of `--repeats` calls is timed; columns:

    prec      the precision the method actually ran in. `--precision bf16|fp16` applies only to
              methods whose class lists that dtype in `autocast_dtypes` (as in the harness: SR
              models get `precision=` at construction and autocast inside, the other deep models
              are called inside `torch.autocast`); every other method runs in fp32. Unlike the
              harness (whose `runtime.amp` is CUDA-only) this also autocasts on the CPU.
    images/s  batch / median seconds per call.
    peak MiB  CPU: growth of the process's peak RSS over the measurement (model already built);
              CUDA: `torch.cuda.max_memory_allocated` over the timed calls.
    GFLOP/img FLOPs of one call (`torch.utils.flop_counter`, convolutions and matmuls) / batch.
    % of peak (known GPUs only) FLOP/s reached over the device's dense peak for the precision
              used (bf16/fp16 tensor-core peak, else the fp32 non-tensor peak).

On CUDA, models with a `.network` and their inputs are channels-last, as in the harness.

Harness overhead (skip with `--no-harness`). The real engine (`pipelines.runner.Runner`) runs all
pipelines of the default grid of a demo profile (`--harness-scenes` scenes of `--harness-size` HR pixels at x2,
small models with seeded weights, `runtime.device` = `--device`, `runtime.amp` for bf16/fp16
(CUDA only, as in the harness), `runtime.batch_size` = `--batch`) in a temporary folder: once to
make the weights and fill the cache, then a timed `run(force=True)` with a fresh Runner that
recomputes every stage. Printed per executor (`--executors`, default local, plus ray when
`import ray` works; Ray gets `num_cpus` = all CPUs):

    wall s     the forced run's wall-clock seconds (`RunSummary.wall_seconds`).
    compute s  seconds spent in model computation, summed over stages (`RunSummary.compute_seconds`).
    overhead   wall / compute, the "harness overhead ratio": 1.0 would mean that nothing but the
               models took time; the rest is planning, loading models, cache reads and writes, PNG
               encoding, scoring, publishing images, the results database (and for Ray, starting
               it and shipping data). With parallel Ray workers, compute seconds add up over the
               workers, so the ratio can fall below 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SIZES = {"sr": (64, 128), "joint": (64, 128), "mef": (128, 256)}
PRECISIONS = ("fp32", "bf16", "fp16")
# Dense peak FLOP/s of known devices (vendor data sheets; bf16/fp16 tensor core, fp32 non-tensor).
PEAK_FLOPS = {"H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
              "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}}

MEASURE = r"""
import json, resource, sys, time, torch
from pipelines.registry import method
name, size, device, side, repeats, precision, batch = sys.argv[1:8]
side, repeats, batch = int(side), int(repeats), int(batch)
entry = method(name)
# the precision asked for applies only to methods that list it; the others run in fp32 (as the runner does)
options = entry.runtime_options(precision=precision)
used = options.get("precision", "fp32")
torch.manual_seed(0)
model = entry.create(2, size, seed=0, device=device, **options) if entry.deep else entry.create(2)
channels_last = device.startswith("cuda") and hasattr(model, "use_channels_last")
if channels_last:
    model.use_channels_last()
memory_format = torch.channels_last if channels_last else torch.contiguous_format
x = torch.rand(batch, 3, side, side, device=device).contiguous(memory_format=memory_format)
y = torch.rand(batch, 3, side, side, device=device).contiguous(memory_format=memory_format)
inputs = (x,) if entry.kind == "sr" else (x, y)
def call():
    with torch.no_grad():
        return getattr(model, entry.call)(*inputs)
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
call()  # warm-up
if device.startswith("cuda"):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
times = []
for _ in range(repeats):
    start = time.perf_counter(); call()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024)
flops = None
if entry.deep:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        call()
    flops = counter.get_total_flops()
times.sort()
print(json.dumps({"seconds": times[len(times) // 2], "peak_bytes": peak, "flops": flops, "precision": used,
                  "parameters": getattr(model, "num_parameters", 0)}))
"""


def measure(name: str, size: str, device: str, side: int, repeats: int, precision: str = "fp32",
            batch: int = 1) -> dict:
    """One method at one input side, in a fresh subprocess: median seconds per call, peak memory
    (bytes), FLOPs per call, the precision used; or {"error": last line of its stderr}."""
    out = subprocess.run([sys.executable, "-c", MEASURE, name, size, device, str(side), str(repeats), precision,
                          str(batch)], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- harness overhead -----------------------------------------------------------------------------

def harness_config(root: Path, args):
    """A demo profile in `root` with the benchmark's device, precision, batch and scene settings."""
    import tomllib

    from pipelines.config import parse_config

    amp = f'amp = true\namp_dtype = "{args.precision}"\n' if args.precision != "fp32" else ""
    text = f"""
[profiles.demo]
output_dir = "{(root / 'out').as_posix()}"
cache_dir = "{(root / 'cache').as_posix()}"
[profiles.demo.dataset]
num_scenes = {args.harness_scenes}
hr_size = {args.harness_size}
[profiles.demo.runtime]
device = "{args.device}"
batch_size = {args.batch}
{amp}"""
    return parse_config(tomllib.loads(text), source="throughput.toml", base_dir=root)


def ray_importable() -> bool:
    try:
        import ray  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means no Ray
        return False
    return True


def harness_overhead(args, executors: list[str]) -> None:
    from pipelines.demo_training import seeded_demo_weights
    from pipelines.runner import Runner

    def runner(config, executor):
        r = Runner(config, weights_trainer=seeded_demo_weights, show_progress=False, log=lambda *_: None,
                   executor=executor)
        if executor == "ray":
            r.ray_options = {"num_cpus": os.cpu_count()}
        return r

    amp_note = args.precision if args.precision != "fp32" and args.device.startswith("cuda") else "fp32"
    print()
    print(f"harness overhead: demo profile, the default grid, {args.harness_scenes} scenes of {args.harness_size} px "
          f"HR at x2, small seeded models, {args.device}, {amp_note}, batch {args.batch}; forced rerun")
    print(f"{'executor':<10}{'stages':>8}{'wall s':>10}{'compute s':>11}{'overhead':>10}")
    with tempfile.TemporaryDirectory(prefix="cfanet-throughput-") as tmp:
        for executor in executors:
            if executor == "ray" and not ray_importable():
                print(f"{executor:<10}  skipped: `import ray` fails")
                continue
            root = Path(tmp) / executor
            root.mkdir()
            config = harness_config(root, args)
            try:
                runner(config, executor).run()  # weights, model loading paths, cache
                timed = runner(config, executor).run(force=True)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next executor
                text = " ".join(str(exc).split()) or type(exc).__name__
                print(f"{executor:<10}  error: {text}")
                continue
            ratio = timed.wall_seconds / timed.compute_seconds if timed.compute_seconds else float("inf")
            print(f"{executor:<10}{timed.stages_computed:>8}{timed.wall_seconds:>10.2f}"
                  f"{timed.compute_seconds:>11.2f}{ratio:>9.2f}x")


# -- main -----------------------------------------------------------------------------------------

def main() -> None:
    from pipelines.registry import methods

    registered = methods().specs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("official", "small"), default="official")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="autocast dtype for methods that list it in autocast_dtypes (default fp32)")
    parser.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    parser.add_argument("--methods", nargs="*", help="subset of methods (default: every registered method)")
    parser.add_argument("--no-harness", action="store_true", help="skip the harness overhead section")
    parser.add_argument("--executors", default=None,
                        help="comma-separated executors for the harness section (default: local, plus ray "
                             "when importable)")
    parser.add_argument("--harness-scenes", type=int, default=4, help="demo scenes of the harness run (default 4)")
    parser.add_argument("--harness-size", type=int, default=128, help="HR side of the demo scenes (default 128)")
    args = parser.parse_args()
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.harness_scenes < 1:
        parser.error("--harness-scenes must be at least 1")
    if args.harness_size % 4 or args.harness_size < 4:
        parser.error("--harness-size must be a positive multiple of 4")
    if args.executors is None:
        executors = ["local"] + (["ray"] if ray_importable() else [])
    else:
        executors = [e.strip() for e in args.executors.split(",") if e.strip()]
        unknown = [e for e in executors if e not in ("local", "ray")]
        if unknown or not executors:
            parser.error(f"--executors: expected a comma-separated subset of local,ray, got {args.executors!r}")
    unknown = [m for m in args.methods or () if m not in registered]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(registered)}")

    device_name = platform.processor() or platform.machine()
    if args.device.startswith("cuda"):
        import torch

        device_name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_FLOPS.items() if k in device_name), None)
    print(f"{args.size} configurations on {args.device} ({device_name}, {os.cpu_count()} CPUs), median of "
          f"{args.repeats}, "
          + (f"{args.precision} where supported (else fp32)" if args.precision != "fp32" else "fp32")
          + f", batch {args.batch}")
    print(f"{'method':<13}{'input':>9}{'prec':>6}{'images/s':>10}{'peak MiB':>10}{'GFLOP/img':>10}"
          + ("  % of peak" if peak else ""))
    for name, entry in registered.items():
        if args.methods and name not in args.methods:
            continue
        for side in SIZES[entry.kind]:
            result = measure(name, args.size, args.device, side, args.repeats, args.precision, args.batch)
            if "error" in result:
                print(f"{name:<13}{side:>7}px  error: {result['error']}")
                continue
            used = result["precision"]
            gflop = result["flops"] / 1e9 / args.batch if result["flops"] else None
            line = (f"{name:<13}{side:>7}px{used:>6}{args.batch / result['seconds']:>10.2f}"
                    f"{result['peak_bytes'] / 2**20:>10.1f}{(f'{gflop:10.2f}' if gflop else '         -')}")
            if peak and gflop:
                line += f"  {100 * result['flops'] / result['seconds'] / peak[used]:8.1f}%"
            print(line)
    if not args.no_harness:
        harness_overhead(args, executors)


if __name__ == "__main__":
    main()
