"""Speed of the classical MEF baselines on a 1-megapixel pair (python benchmarks/mef_classic.py).

Times our MGFF and Fast SPD-MEF (`baselines.mef`) through their harness entry point `fuse`
(float32 (1, 3, H, W) tensors in, out): the median over a few runs after one warm-up run.

The pair: MEFB's `Sky` exposures (the largest scene in ../shared/data/mefb, 513x770) resized to
1000x1000 when the shared data is present; otherwise a synthetic pair, scikit-image's astronaut
photo resized to 1000x1000 and exposed +-2.5 stops by the demo camera model
(`cfanet.data.demo.CameraModel`).

Optionally also the official MATLAB codes under GNU Octave, on the same pair (written as PNG), when
`octave` is on PATH and you point the script to a folder holding the official code:

  --official-mgff DIR   (or $CFANET_OFFICIAL_MGFF): the author's MGFF files, `fuse_MGF_RGB.m`,
                        `guidedfilter.m`, `guidedfilter_color.m`, `boxfilter.m` (e.g. VIFB's
                        `methods/MGFF`). Called as `fuse_MGF_RGB(double(I1), double(I2), 9, 1e3)`,
                        timed with tic/toc around that call (one warm-up call first).
  --official-fmmef DIR  (or $CFANET_OFFICIAL_FMMEF): a checkout of xiaohuiben/fmmef-TIP-2020. Its
                        demo script `demo_multi_sta.m` is run unmodified (Octave `source`) from a
                        scratch folder in which the folder name the demo loads holds this pair; the
                        time is the demo's own tic/toc (the fusion, not the file loading); the
                        first run is a warm-up.

Nothing of the official code is contained here; it is only called from the folder given. The
table also says how many 8-bit values of the official result differ from ours.

Fast SPD-MEF speed-up: the module as it was at `--baseline-rev` (default: the last NumPy version,
loaded from git into a temporary module) and today's torch module fuse the same pair, runs
interleaved so that both see the same machine load; printed per megapixel, today's with 1 CPU thread
and with torch's thread count, the ratio and the count of differing 8-bit values; `--device cuda`
adds today's code on CUDA.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from cfanet.images import quantize

SIZE = 1000
REPEATS = 3
FMMEF_SCENE_FOLDER = "Chinese_garden_Bartlomiej Okonek"  # the folder demo_multi_sta.m loads


def shared_data_root() -> Path:
    return Path(os.environ.get("CFANET_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def load_pair(size: int = SIZE) -> tuple[np.ndarray, np.ndarray, str]:
    """(over, under, description): uint8 RGB (size, size, 3) exposures of one scene."""
    sky = shared_data_root() / "mefb" / "Sky"
    if sky.is_dir():
        from cfanet.images import read_image_array

        over, under = (read_image_array(next(sky.glob(f"{role}.*"))) for role in ("over", "under"))
        over, under = (cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) for image in (over, under))
        return over, under, f"MEFB Sky 513x770 resized to {size}x{size}"
    import skimage.data

    from cfanet.data.demo import CameraModel, srgb_decode

    photo = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC)
    linear = srgb_decode(photo.astype(np.float64) / 255.0)
    rng = np.random.default_rng(0)
    over, under = (quantize(CameraModel().expose(linear, stops, rng)) for stops in (2.5, -2.5))
    return over, under, f"synthetic: astronaut {size}x{size}, +-2.5 stops (demo camera model)"


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]


def time_ours(fuse, over: np.ndarray, under: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    """Median seconds of `fuse(over, under)` on tensors, after a warm-up; and its uint8 output."""
    over_t, under_t = _tensor(over), _tensor(under)
    out = fuse(over_t, under_t)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fuse(over_t, under_t)
        times.append(time.perf_counter() - start)
    return statistics.median(times), quantize(out[0]).transpose(1, 2, 0)


def _octave_string(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _run_octave(code: str, cwd: Path, timeout: float) -> str:
    code = "try, pkg load image; end\n" + code  # the official codes call image-package functions
    result = subprocess.run(["octave", "--no-gui", "--quiet", "--no-window-system", "--eval", code],
                            cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 and "TIME" not in result.stdout and "Elapsed time" not in result.stdout:
        raise RuntimeError(f"octave failed (exit {result.returncode}): {result.stderr.strip()[-800:]}")
    return result.stdout


def octave_mgff(code_dir: Path, over_png: Path, under_png: Path, out_png: Path, repeats: int) -> list[float]:
    """Seconds per call of the official `fuse_MGF_RGB` (r = 9, eps = 1e3), after a warm-up call."""
    code = "\n".join([
        f"addpath({_octave_string(code_dir)});",
        f"I1 = double(imread({_octave_string(over_png)})); I2 = double(imread({_octave_string(under_png)}));",
        "F = fuse_MGF_RGB(I1, I2, 9, 1e3);",
        f"for k = 1:{repeats}",
        "  tic; F = fuse_MGF_RGB(I1, I2, 9, 1e3); printf('TIME %.6f\\n', toc);",
        "end",
        f"imwrite(F, {_octave_string(out_png)});",
    ])
    stdout = _run_octave(code, out_png.parent, timeout=600)
    return [float(value) for value in re.findall(r"TIME ([0-9.eE+-]+)", stdout)]


def octave_fmmef(code_dir: Path, over_png: Path, under_png: Path, out_png: Path, repeats: int) -> list[float]:
    """Seconds of the official `demo_multi_sta.m` per run (its own tic/toc), after a warm-up run."""
    workdir = out_png.parent / "fmmef_run"
    scene = workdir / FMMEF_SCENE_FOLDER
    scene.mkdir(parents=True, exist_ok=True)
    shutil.copy(under_png, scene / "1_under.png")
    shutil.copy(over_png, scene / "2_over.png")
    demo = code_dir / "demo_multi_sta.m"
    # The demo ends by showing the result in a figure, which fails without a display: ignore that.
    run_demo = f"try, source({_octave_string(demo)}); catch err, printf('DEMO_ERROR %s\\n', err.message); end"
    code = "\n".join([
        f"addpath(genpath({_octave_string(code_dir)}));",
        "set(0, 'defaultfigurevisible', 'off');",
        *[run_demo] * (repeats + 1),
        # C_out is double, not clipped; store it as MATLAB uint8 would (Octave writes doubles as 16-bit PNG).
        f"imwrite(uint8(255 * min(max(C_out, 0), 1)), {_octave_string(out_png)});",
    ])
    stdout = _run_octave(code, workdir, timeout=600)
    times = [float(value) for value in re.findall(r"Elapsed time is ([0-9.eE+-]+) seconds", stdout)]
    if len(times) < repeats + 1:
        errors = sorted(set(re.findall(r"DEMO_ERROR (.*)", stdout)))
        raise RuntimeError(f"demo_multi_sta.m did not finish every run: {errors}")
    return times[1:]


def _differing(reference_png: Path, ours: np.ndarray) -> str:
    from cfanet.images import read_image_array

    if not reference_png.is_file():
        return "no output"
    official = read_image_array(reference_png)
    if official.shape != ours.shape:
        return f"shape {official.shape} vs ours {ours.shape}"
    return f"{int(np.count_nonzero(official != ours))} differing values"


# -- Fast SPD-MEF: the earlier NumPy code (from git) against the torch code, same run ----------------

FAST_SPD_MEF_BASELINE_REV = "f61413217e9a062e73a8a9361237f5f239a92d67"
"""HEAD when Fast SPD-MEF moved to torch: its `baselines/mef/fast_spd_mef.py` is the NumPy code."""


def add_fast_spd_mef_arguments(parser: argparse.ArgumentParser) -> None:
    """--baseline-rev and --device, unless another part of this script already declares them."""
    if "--baseline-rev" not in parser._option_string_actions:
        parser.add_argument("--baseline-rev", default=FAST_SPD_MEF_BASELINE_REV,
                            help="git revision whose code is timed as 'earlier' (default: the NumPy Fast "
                                 f"SPD-MEF, {FAST_SPD_MEF_BASELINE_REV[:7]})")
    if "--device" not in parser._option_string_actions:
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                            help="also time the torch code on CUDA with 'cuda' (default: cpu only)")


def fast_spd_mef_at(rev: str):
    """`baselines/mef/fast_spd_mef.py` as it was at git revision `rev`, loaded as a separate module."""
    import importlib.util
    import sys

    repo = Path(__file__).resolve().parents[1]
    path = "baselines/mef/fast_spd_mef.py"
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True,
                            check=True).stdout
    name = f"fast_spd_mef_at_{rev[:12]}"
    with tempfile.TemporaryDirectory(prefix="fast_spd_mef_") as folder:
        file = Path(folder) / f"{name}.py"
        file.write_text(source)
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, file))
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        module.__spec__.loader.exec_module(module)
    return module


def _fuse_seconds(fuse, over_t: torch.Tensor, under_t: torch.Tensor) -> float:
    if over_t.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fuse(over_t, under_t)
    if over_t.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def print_fast_spd_mef_speedup(over: np.ndarray, under: np.ndarray, rev: str, device: str, repeats: int) -> None:
    """Time the Fast SPD-MEF code of `rev` and today's on the same pair, runs interleaved (so both see
    the same machine load): today's with 1 CPU thread and with `torch.get_num_threads()`. Print seconds
    per megapixel (medians after a warm-up), the ratios and how many 8-bit values differ; with
    `device="cuda"` also today's code on CUDA."""
    from baselines.mef.fast_spd_mef import fuse as fuse_now

    megapixels = over.shape[0] * over.shape[1] / 1e6
    try:
        earlier = fast_spd_mef_at(rev)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"Fast SPD-MEF speed-up: skipped, no code at {rev!r} ({exc})")
        return
    over_t, under_t = _tensor(over), _tensor(under)
    earlier_out, now_out = earlier.fuse(over_t, under_t), fuse_now(over_t, under_t)  # warm-up
    differing = int(np.count_nonzero(quantize(earlier_out) != quantize(now_out)))
    threads = torch.get_num_threads()
    counts = sorted({1, threads})
    earlier_s, now_s = [], {count: [] for count in counts}
    try:
        for _ in range(repeats):
            earlier_s.append(_fuse_seconds(earlier.fuse, over_t, under_t))
            for count in counts:
                torch.set_num_threads(count)
                now_s[count].append(_fuse_seconds(fuse_now, over_t, under_t))
    finally:
        torch.set_num_threads(threads)
    earlier_mp = statistics.median(earlier_s) / megapixels
    print(f"\nFast SPD-MEF: code at {rev[:7]} ('earlier', NumPy, one thread) vs today's (torch), {over.shape[1]}x"
          f"{over.shape[0]} pair, {repeats} interleaved runs each after a warm-up, medians per megapixel")
    print(f"{'device':8s} {'threads':>7s} {'earlier s/MP':>13s} {'now s/MP':>9s} {'earlier/now':>12s}  "
          "8-bit values differing")
    for count in counts:
        now_mp = statistics.median(now_s[count]) / megapixels
        print(f"{'cpu':8s} {count:7d} {earlier_mp:13.3f} {now_mp:9.3f} {earlier_mp / now_mp:11.2f}x  {differing}")
    if device == "cuda":
        if not torch.cuda.is_available():
            print("cuda     CUDA not available")
            return
        over_c, under_c = over_t.cuda(), under_t.cuda()
        cuda_out = fuse_now(over_c, under_c)  # warm-up
        cuda_differing = int(np.count_nonzero(quantize(cuda_out) != quantize(now_out)))
        cuda_mp = statistics.median(_fuse_seconds(fuse_now, over_c, under_c) for _ in range(repeats)) / megapixels
        print(f"{'cuda':8s} {'-':>7s} {earlier_mp:13.3f} {cuda_mp:9.3f} {earlier_mp / cuda_mp:11.2f}x  "
              f"{cuda_differing} (vs today's CPU result; {torch.cuda.get_device_name()})")


# -- MGFF: the earlier NumPy code (from git) against the torch code, same run ------------------------

MGFF_BASELINE_REV = "f61413217e9a062e73a8a9361237f5f239a92d67"
"""HEAD when MGFF moved to torch: its `baselines/mef/mgff.py` is the NumPy code."""


def add_mgff_arguments(parser: argparse.ArgumentParser) -> None:
    """--baseline-rev and --device, unless another part of this script already declares them."""
    if "--baseline-rev" not in parser._option_string_actions:
        parser.add_argument("--baseline-rev", default=MGFF_BASELINE_REV,
                            help="git revision whose code is timed as 'earlier' (default: the NumPy MGFF, "
                                 f"{MGFF_BASELINE_REV[:7]})")
    if "--device" not in parser._option_string_actions:
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                            help="also time the torch code on CUDA with 'cuda' (default: cpu only)")


def mgff_at(rev: str):
    """`baselines/mef/mgff.py` as it was at git revision `rev`, loaded as a separate module."""
    import importlib.util
    import sys

    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{rev}:baselines/mef/mgff.py"], cwd=repo, capture_output=True,
                            text=True, check=True).stdout
    name = f"mgff_at_{rev[:12]}"
    with tempfile.TemporaryDirectory(prefix="mgff_") as folder:
        file = Path(folder) / f"{name}.py"
        file.write_text(source)
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, file))
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        module.__spec__.loader.exec_module(module)
    return module


def _mgff_seconds(fuse, over_t: torch.Tensor, under_t: torch.Tensor) -> float:
    if over_t.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fuse(over_t, under_t)
    if over_t.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def print_mgff_speedup(over: np.ndarray, under: np.ndarray, rev: str, device: str, repeats: int) -> None:
    """Time the MGFF code of `rev` and today's on the same pair, runs interleaved (so both see the same
    machine load): today's with 1 CPU thread and with `torch.get_num_threads()`. Print seconds per
    megapixel (medians after a warm-up), the ratios and how many 8-bit values differ; with
    `device="cuda"` also today's code on CUDA."""
    from baselines.mef.mgff import fuse as fuse_now

    megapixels = over.shape[0] * over.shape[1] / 1e6
    try:
        earlier = mgff_at(rev)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"MGFF speed-up: skipped, no code at {rev!r} ({exc})")
        return
    over_t, under_t = _tensor(over), _tensor(under)
    earlier_out, now_out = earlier.fuse(over_t, under_t), fuse_now(over_t, under_t)  # warm-up
    differing = int(np.count_nonzero(quantize(earlier_out) != quantize(now_out)))
    threads = torch.get_num_threads()
    counts = sorted({1, threads})
    earlier_s, now_s = [], {count: [] for count in counts}
    try:
        for _ in range(repeats):
            earlier_s.append(_mgff_seconds(earlier.fuse, over_t, under_t))
            for count in counts:
                torch.set_num_threads(count)
                now_s[count].append(_mgff_seconds(fuse_now, over_t, under_t))
    finally:
        torch.set_num_threads(threads)
    earlier_mp = statistics.median(earlier_s) / megapixels
    print(f"\nMGFF: code at {rev[:7]} ('earlier', NumPy, one thread) vs today's (torch), {over.shape[1]}x"
          f"{over.shape[0]} pair, {repeats} interleaved runs each after a warm-up, medians per megapixel")
    print(f"{'device':8s} {'threads':>7s} {'earlier s/MP':>13s} {'now s/MP':>9s} {'earlier/now':>12s}  8-bit values differing")
    for count in counts:
        now_mp = statistics.median(now_s[count]) / megapixels
        print(f"{'cpu':8s} {count:7d} {earlier_mp:13.3f} {now_mp:9.3f} {earlier_mp / now_mp:11.2f}x  {differing}")
    if device == "cuda":
        if not torch.cuda.is_available():
            print("cuda     CUDA not available")
            return
        over_c, under_c = over_t.cuda(), under_t.cuda()
        cuda_out = fuse_now(over_c, under_c)  # warm-up
        cuda_differing = int(np.count_nonzero(quantize(cuda_out) != quantize(now_out)))
        cuda_mp = statistics.median(_mgff_seconds(fuse_now, over_c, under_c) for _ in range(repeats)) / megapixels
        print(f"{'cuda':8s} {'-':>7s} {earlier_mp:13.3f} {cuda_mp:9.3f} {earlier_mp / cuda_mp:11.2f}x  "
              f"{cuda_differing} (vs today's CPU result; {torch.cuda.get_device_name()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-mgff", type=Path, default=os.environ.get("CFANET_OFFICIAL_MGFF"),
                        help="folder with the author's fuse_MGF_RGB.m etc. ($CFANET_OFFICIAL_MGFF)")
    parser.add_argument("--official-fmmef", type=Path, default=os.environ.get("CFANET_OFFICIAL_FMMEF"),
                        help="checkout of xiaohuiben/fmmef-TIP-2020 ($CFANET_OFFICIAL_FMMEF)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed runs per method (default {REPEATS})")
    parser.add_argument("--size", type=int, default=SIZE, help=f"side of the square pair (default {SIZE})")
    add_fast_spd_mef_arguments(parser)
    add_mgff_arguments(parser)
    args = parser.parse_args()

    over, under, description = load_pair(args.size)
    print(f"pair: {description}; median of {args.repeats} after a warm-up")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} (times are wall-clock: a busy machine inflates them)")

    from baselines.mef.mgff import fuse as mgff_fuse

    methods = [("MGFF", mgff_fuse, args.official_mgff, octave_mgff, "fuse_MGF_RGB.m")]
    try:
        from baselines.mef.fast_spd_mef import fuse as fast_spd_mef_fuse
    except ImportError as exc:
        print(f"Fast SPD-MEF: skipped, baselines.mef.fast_spd_mef not importable ({exc})")
    else:
        methods.append(("Fast SPD-MEF", fast_spd_mef_fuse, args.official_fmmef, octave_fmmef, "demo_multi_sta.m"))

    octave = shutil.which("octave")
    print(f"{'method':14s} {'ours s':>8s} {'official (Octave) s':>20s} {'official/ours':>14s}  official vs ours")
    with tempfile.TemporaryDirectory(prefix="mef_classic_") as scratch:
        scratch = Path(scratch)
        over_png, under_png = scratch / "over.png", scratch / "under.png"
        for path, image in ((over_png, over), (under_png, under)):
            cv2.imwrite(str(path), image[:, :, ::-1])
        for name, fuse, code_dir, run_official, entry in methods:
            ours_s, ours_u8 = time_ours(fuse, over, under, args.repeats)
            official, note = "-", "official code not given"
            ratio = "-"
            if code_dir is not None:
                if octave is None:
                    note = "octave not on PATH"
                elif not (Path(code_dir) / entry).is_file():
                    note = f"{entry} not found in {code_dir}"
                else:
                    out_png = scratch / f"official_{name.replace(' ', '_')}.png"
                    try:
                        times = run_official(Path(code_dir).resolve(), over_png, under_png, out_png, args.repeats)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        note = f"octave run failed: {exc}"
                    else:
                        if times:
                            official_s = statistics.median(times)
                            official, ratio = f"{official_s:.3f}", f"{official_s / ours_s:.2f}x"
                            note = _differing(out_png, ours_u8)
                        else:
                            note = "no timing printed by octave"
            print(f"{name:14s} {ours_s:8.3f} {official:>20s} {ratio:>14s}  {note}")
    print_fast_spd_mef_speedup(over, under, args.baseline_rev, args.device, args.repeats)
    print_mgff_speedup(over, under, args.baseline_rev, args.device, args.repeats)


if __name__ == "__main__":
    main()
