"""Does the trainer make a joint network learn? (python benchmarks/train_learning.py [--minutes 4])

A small CFANet (small CF-Net when CFANet cannot be imported) is trained from scratch with
`cfanet.training` for a few CPU minutes on the demo set's `train` split (16 scenes of 4
photographs; validation on 4 other crops of them), with `demo_config` (LR patch 32, batch 4,
Adam, lr 5e-4). It is then scored on the demo `test` split (6 scenes of 3 other photographs, the
demo profile's benchmark scenes) against bicubic upsampling (MATLAB imresize) of each exposure
followed by averaging, the simplest joint fusion + SR. PSNR/SSIM under the 'paper' convention,
MEF-SSIM against the HR exposures. The untrained network is scored too, since CF-Net's output is
a residual over bilinear upsampling and starts close to "upsample and average".

Prints the figures, the training speed (steps/s on the CPU at the demo patch) and, when CUDA is
available, the training speed at the paper's patch size (LR 64, batch 4, official configuration)
in fp32 and with bf16 autocast + channels-last. Exit status 1 when the trained network does not
beat bicubic + average. Writes summary.json and the run (checkpoints, curve) to --output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cfanet.data.demo import DemoDataset
from cfanet.metrics import mef_ms_ssim, psnr, ssim
from cfanet.resize import imresize
from cfanet.training import JointTask, Trainer, TrainingConfig, demo_config, demo_training_data
from cfanet.training.speed import measure_training_speed

SCALE = 2


def joint_model_class():
    """CFANet when importable, else CF-Net (both small configurations train the same way)."""
    try:
        from cfanet.network import CFANet

        return CFANet
    except ImportError:
        from baselines.joint.cfnet import CFNet

        return CFNet


def bicubic_average(scene) -> torch.Tensor:
    return (0.5 * (imresize(scene.over, scale=SCALE) + imresize(scene.under, scale=SCALE))).clamp(0, 1)


def score(fuse, scenes) -> dict[str, float]:
    """Mean PSNR, SSIM ('paper' convention) and MEF-SSIM of `fuse(scene)` over `scenes`."""
    rows = []
    with torch.no_grad():
        for s in scenes:
            fused = fuse(s)
            rows.append((psnr(fused, s.gt), ssim(fused, s.gt), mef_ms_ssim([s.gt_over, s.gt_under], fused).score))
    psnrs, ssims, mefs = zip(*rows)
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "mef_ssim": float(np.mean(mefs)),
            "psnr_per_scene": [round(v, 3) for v in psnrs]}


def gpu_speed(model_class) -> list[dict]:
    """Training steps/s at the paper's patch size (LR 64, batch 4), official configuration, on CUDA."""
    results = []
    for precision, channels_last in (("fp32", False), ("bf16", True)):
        model = model_class.create(SCALE, size="official", seed=0, device="cuda")
        config = TrainingConfig(batch_size=4, patch_size=64, precision=precision, channels_last=channels_last)
        torch.cuda.reset_peak_memory_stats()
        results.append(measure_training_speed(JointTask(model), config, steps=30, warmup=5))
        del model
        torch.cuda.empty_cache()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="CPU training time (default 4)")
    parser.add_argument("--steps", type=int, help="train this many steps instead of a time budget")
    parser.add_argument("--model", choices=("CFANet", "CF-Net"), help="default: CFANet if importable")
    parser.add_argument("--output", help="folder for the run and summary.json (default: a temporary folder)")
    parser.add_argument("--gpu-only", action="store_true", help="only the CUDA speed measurement")
    args = parser.parse_args(argv)

    if args.model == "CF-Net":
        from baselines.joint.cfnet import CFNet as model_class
    else:
        model_class = joint_model_class()
    output = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="train_learning_"))
    summary: dict = {"model": model_class.name, "scale": SCALE, "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; output {output}")

    if torch.cuda.is_available():
        speeds = gpu_speed(model_class)
        summary["gpu_speed"] = speeds
        for s in speeds:
            print(f"GPU training speed, {model_class.name} official x{SCALE}, LR patch {s['patch_size']}, batch "
                  f"{s['batch_size']}, {s['precision']}: {s['steps_per_second']:.2f} steps/s "
                  f"({s['device_name']}, peak {s['peak_memory_gib']:.2f} GiB)")
    else:
        print("GPU training speed: CUDA not available, not measured")
    if args.gpu_only:
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
        return 0

    train, val = demo_training_data(SCALE, hr_size=192, seed=0, num_train=16, num_val=4)
    test = list(DemoDataset(SCALE, num_scenes=6, hr_size=192, seed=0, split="test"))
    budget = {"max_steps": args.steps} if args.steps else {"max_steps": None, "max_minutes": args.minutes}
    config = demo_config(**budget)

    model = model_class.create(SCALE, size="small", seed=0, device="cpu")
    task = JointTask(model)
    baseline = score(bicubic_average, test)
    untrained = score(task.predict, test)
    speed_model = model_class.create(SCALE, size="small", seed=1, device="cpu")
    cpu_speed = measure_training_speed(JointTask(speed_model), config, steps=10, warmup=2)

    start = time.monotonic()
    result = Trainer(task, train, val, config, output / "run", progress=sys.stderr.isatty(),
                     title=f"{model_class.name} small x{SCALE} (demo)").fit()
    minutes = (time.monotonic() - start) / 60
    last = score(task.predict, test)
    best_model = model_class.from_checkpoint(result.best_checkpoint)
    best = score(JointTask(best_model).predict, test)

    summary.update({
        "config": config.to_dict(), "num_parameters": task.config()["num_parameters"],
        "train_scenes": len(train), "val_scenes": len(val), "test_scenes": [s.name for s in test],
        "steps": result.steps, "minutes": minutes, "steps_per_second_with_validation": result.steps_per_second,
        "cpu_speed": cpu_speed, "best_step": result.best["step"] if result.best else None,
        "bicubic_average": baseline, "untrained": untrained, "trained_last": last, "trained_best": best,
        "history": result.history, "curve": str(result.curve),
    })
    (output / "summary.json").write_text(json.dumps(summary, indent=2))

    print(f"\n{model_class.name} small x{SCALE}, {summary['num_parameters']:,} parameters, "
          f"trained {result.steps} steps "
          f"in {minutes:.1f} min on the CPU ({result.steps_per_second:.2f} steps/s with validation; "
          f"{cpu_speed['steps_per_second']:.2f} steps/s training only, LR patch {config.patch_size}, "
          f"batch {config.batch_size})")
    print(f"held-out demo test scenes ({len(test)}, photographs never trained on), 'paper' convention:")
    print(f"  {'':28s} {'PSNR':>8s} {'SSIM':>7s} {'MEF-SSIM':>9s}")
    for label, row in (("bicubic x2 + average", baseline), ("untrained network", untrained),
                       (f"trained, last (step {result.steps})", last),
                       (f"trained, best val (step {summary['best_step']})", best)):
        print(f"  {label:28s} {row['psnr']:8.2f} {row['ssim']:7.4f} {row['mef_ssim']:9.4f}")
    verdict = best["psnr"] > baseline["psnr"]
    print(f"{'PASS' if verdict else 'FAIL'}: trained {best['psnr']:.2f} dB vs bicubic + average "
          f"{baseline['psnr']:.2f} dB ({best['psnr'] - baseline['psnr']:+.2f} dB)")
    print(f"wrote {output / 'summary.json'}, {result.curve}, {result.best_checkpoint}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
