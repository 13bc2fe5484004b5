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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-mgff", type=Path, default=os.environ.get("CFANET_OFFICIAL_MGFF"),
                        help="folder with the author's fuse_MGF_RGB.m etc. ($CFANET_OFFICIAL_MGFF)")
    parser.add_argument("--official-fmmef", type=Path, default=os.environ.get("CFANET_OFFICIAL_FMMEF"),
                        help="checkout of xiaohuiben/fmmef-TIP-2020 ($CFANET_OFFICIAL_FMMEF)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed runs per method (default {REPEATS})")
    parser.add_argument("--size", type=int, default=SIZE, help=f"side of the square pair (default {SIZE})")
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


if __name__ == "__main__":
    main()
