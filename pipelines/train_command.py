"""`cfanet-bench train MODEL`: train a joint or SR model with `cfanet.training`.

Data come from the profile (`--profile`, default the config's default profile):

- dataset kind `demo`: training on the demo set's `train` split (photographs the benchmark's
  `test` split never shows), validation on other crops of those photographs
  (`cfanet.training.demo_training_data`); settings from `demo_config` and the profile's
  `[demo_training]` table (steps, patch size, batch size, seed);
- any other kind (SICE, CF-Net layout, triples): the scenes of `--train-split FILE`, or every
  scene the profile's evaluation `split_file` does not list (with neither, training would see the
  test scenes: refused); validation on `--val-split FILE`, or a seeded 5% (1 to 10 scenes) held
  out of the training scenes. Settings: `TrainingConfig`'s paper-like defaults (batch 4, LR patch
  64, Adam, x0.5 every 200 epochs, 1000 epochs).

MEF-Net training is not written yet; U2Fusion's needs pretrained VGG-16 features that cannot be
downloaded here: both exit with status 2 and say so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2
DEMO_TRAIN_SCENES, DEMO_VAL_SCENES = 16, 4


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `train` sub-command to an argparse sub-parser collection; returns its parser."""
    p = subparsers.add_parser(
        "train", help="train CF-Net, CFANet or an SR model (checkpoints, resume, validation, curve)",
        description="Train a model on the profile's dataset with the project's trainer. Demo profiles train "
                    "the small configuration briefly on the demo train split; other profiles use the paper's "
                    "settings (batch 4, LR patch 64, Adam, lr x0.5 every 200 epochs).")
    p.add_argument("model", metavar="MODEL", help="a trainable method: a joint network or an SR model "
                                                  "(`cfanet-bench list --json` says which are trainable)")
    p.add_argument("--profile", help="profile whose dataset and sizes to use (default: the config's default)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="train this many epochs in total")
    budget.add_argument("--steps", type=int, help="train this many optimiser steps in total")
    budget.add_argument("--minutes", type=float, help="train for this many minutes (this invocation)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last.pt")
    p.add_argument("--output", help="folder for checkpoints, history and curve "
                                    "(default: <profile output_dir>/training/<MODEL>_x<S>_<size>)")
    p.add_argument("--size", choices=("small", "official"), help="model configuration (default: the profile's)")
    p.add_argument("--scale", type=int, help="SR factor (default: the profile's first scale)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: the profile's runtime.device, "
                                                    "auto = cuda when available)")
    p.add_argument("--lr", type=float, help="initial learning rate (default 1e-4; demo 5e-4)")
    p.add_argument("--batch-size", type=int, help="patches per step (default 4)")
    p.add_argument("--patch-size", type=int, help="LR patch side in pixels (default 64; demo: the profile's)")
    p.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: one pass over the scenes; demo 25)")
    p.add_argument("--seed", type=int, help="seed of the weights, patches and RNGs (default 0)")
    p.add_argument("--train-split", help="file listing the training scenes (non-demo datasets)")
    p.add_argument("--val-split", help="file listing the validation scenes (non-demo datasets)")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA too (default: bf16 autocast)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    return p


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _device(requested: str, profile) -> str:
    import torch

    if requested == "auto":
        requested = profile.runtime.device
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} asked for, but CUDA is not available")
    return requested


def training_scenes(profile, scale: int, args) -> tuple[list, list, str]:
    """(training scenes, validation scenes, a one-line description) for the profile's dataset."""
    from cfanet.data.folders import read_split
    from cfanet.data.scene import DatasetError
    from cfanet.training import demo_training_data, hold_out, load_scenes

    data = profile.dataset
    if data.kind == "demo":
        seed = data.seed
        train, val = demo_training_data(scale, hr_size=data.hr_size, seed=seed, num_train=DEMO_TRAIN_SCENES,
                                        num_val=DEMO_VAL_SCENES)
        return train, val, (f"demo train split: {len(train)} training scenes, {len(val)} validation scenes "
                            f"(other crops of the training photographs; the test photographs stay unseen)")
    from pipelines.datasets import open_profile_dataset

    dataset = open_profile_dataset(profile, scale, use_split=False)
    available = dataset.names()
    if args.train_split:
        train_names = read_split(Path(args.train_split), available)
        source = f"--train-split {args.train_split}"
    elif data.split_file:
        test_names = set(read_split(Path(data.split_file), available))
        train_names = [n for n in available if n not in test_names]
        source = f"the scenes {data.split_file} (the evaluation split) does not list"
    else:
        raise DatasetError(f"profile {profile.name!r} names no evaluation split (dataset.split_file), so training "
                           f"could include the test scenes; pass --train-split FILE")
    if args.val_split:
        val_names = read_split(Path(args.val_split), available)
        overlap = sorted(set(val_names) & set(train_names))
        if overlap:
            raise DatasetError(f"{args.val_split}: {len(overlap)} validation scene(s) are also training scenes: "
                               f"{', '.join(overlap[:10])}")
    else:
        train_names, val_names = hold_out(train_names, seed=args.seed or 0)
    description = (f"{dataset.describe()}: {len(train_names)} training scenes ({source}), "
                   f"{len(val_names)} validation scenes")
    show = not args.no_progress
    return load_scenes(dataset, train_names, show), load_scenes(dataset, val_names, show), description


def training_config(profile, args, supports_bf16: bool):
    """The TrainingConfig for this invocation: demo or paper defaults, then the command-line options."""
    from cfanet.training import TrainingConfig, demo_config

    overrides = {}
    if profile.dataset.kind == "demo":
        demo = profile.demo_training
        base = dict(max_steps=demo.steps, patch_size=demo.patch_size, batch_size=demo.batch_size, seed=demo.seed)
    else:
        base = {}
    for option, key in (("lr", "lr"), ("batch_size", "batch_size"), ("patch_size", "patch_size"),
                        ("steps_per_epoch", "steps_per_epoch"), ("seed", "seed")):
        if getattr(args, option) is not None:
            overrides[key] = getattr(args, option)
    if args.epochs is not None:
        overrides.update(epochs=args.epochs, max_steps=None, max_minutes=None)
    elif args.steps is not None:
        overrides.update(epochs=None, max_steps=args.steps, max_minutes=None)
    elif args.minutes is not None:
        overrides.update(epochs=None, max_steps=None, max_minutes=args.minutes)
    overrides["amp"] = supports_bf16 and not args.no_amp
    values = {**base, **overrides}
    return demo_config(**values) if profile.dataset.kind == "demo" else TrainingConfig(**values)


def cmd_train(args) -> int:
    from cfanet.training import JointTask, SRTask, Trainer, TrainingError
    from pipelines.config import find_config
    from pipelines.registry import method

    config_file = find_config(getattr(args, "config", None))
    entry = method(args.model, config_file)   # unknown names: KeyError, printed by the CLI
    if not entry.deep:
        return _fail(f"{entry.name} has no weights to train")
    if not entry.trainable:
        return _fail(f"{entry.name} cannot be trained here: {entry.not_trainable}. Configure its official weights "
                     f"(weights.\"{entry.name}\" in benchmark.toml) instead.")
    if entry.kind == "mef":
        return _fail(f"training {entry.name} with `train` is not implemented yet (its MEF-SSIM training task will "
                     f"come); use its official weights (weights.\"{entry.name}\" in benchmark.toml)")
    model_class = entry.cls

    profile = config_file.profile(args.profile)
    scale = args.scale or profile.scales[0]
    size = args.size or profile.model_size
    try:
        device = _device(args.device, profile)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        config = training_config(profile, args, supports_bf16=getattr(model_class, "supports_bf16", True))
        train, val, description = training_scenes(profile, scale, args)
        model = entry.create(scale, size, seed=config.seed, device=device)
        task = JointTask(model) if entry.kind == "joint" else SRTask(model)
        output = Path(args.output) if args.output else (
            Path(profile.output_dir) / "training" / f"{entry.name}_x{scale}_{size}")
        print(f"training {entry.name} ({size}, x{scale}, {task.config()['num_parameters']:,} parameters) on {device}")
        print(f"data: {description}")
        print(f"settings: batch {config.batch_size}, LR patch {config.patch_size}, lr {config.lr:g}, "
              f"x{config.decay_gamma:g} every {config.decay_every} epochs, budget "
              + ", ".join(f"{k} {getattr(config, k)}" for k in ("epochs", "max_steps", "max_minutes")
                          if getattr(config, k) is not None))
        trainer = Trainer(task, train, val, config, output, progress=not args.no_progress,
                          title=f"{entry.name} {size} x{scale}")
        result = trainer.fit(resume=args.resume)
    except TrainingError as exc:
        return _fail(str(exc))
    best = result.best or {}
    print(f"{result.steps} steps ({result.epochs_completed} epochs, {result.steps_this_run} this run, "
          f"{result.steps_per_second:.2f} steps/s), stopped by {result.stopped_by}")
    if best.get("val_psnr") is not None:
        print(f"best validation: {best['val_psnr']:.2f} dB PSNR, SSIM {best['val_ssim']:.4f}, "
              f"MEF-SSIM {best['val_mef_ssim']:.4f} at step {best['step']}")
    print(f"wrote {result.last_checkpoint} (resumable: --resume --output {result.output_dir})")
    if result.best_checkpoint:
        print(f"wrote {result.best_checkpoint} (best weights; loads with the model's from_checkpoint)")
    print(f"wrote {result.history_file}")
    print(f"wrote {result.curve}")
    return 0
