"""`cfanet-bench train MODEL`: train a joint or SR model with `cfanet.training`.

What a run trains is its recipe (`pipelines.training_presets`): a preset, plus an ablation and
options for models with variants. Values, lowest precedence first:

1. the preset, `--preset paper|demo|quick` (default: `demo` for demo datasets, `paper` for the
   others). `paper`: the CFANet paper where it says something (loss of Sec. 2.3 with every
   lambda 1), CF-Net's released training script for the rest (batch 4, LR patch 64, Adam with
   lr 1e-6, x0.5 every 200 epochs, 1000 epochs, SSIM window 7, fp32), our own choices marked as
   such (validation every 5 epochs, seed 0); `demo`: `demo_config` and the profile's
   `[demo_training]` table; `quick`: a 50-step sanity run. The preset module's docstring has the
   table with the source of every value;
2. the command line: `--lr`, `--batch-size`, `--patch-size`, `--steps-per-epoch`, `--seed`,
   `--validate-every`, `--precision`, and one budget (`--epochs`, `--steps` or `--minutes`, which
   replaces the preset's budget).

`--dry-run` prints every value with its source, the model's ablations and options, the output
folder, and exits without loading data or training.

Variants, for models whose class declares them (CFANet; CF-Net and the SR models have none and
refuse these options with exit status 2): `--ablation NAME` (a key of the class's `ablations`)
and `--option KEY=VALUE` (repeatable; a field of its configuration dataclass, `CFANetConfig`:
e.g. `feedback=raw`, `projection_kernel=3`, `re_guide=false`, `share_attention=true`,
`reduction=8`). The model size (`--size`) and scale (`--scale`) come from the profile unless
given.

Data come from the profile (`--profile`, default the config's default profile):

- dataset kind `demo`: training on the demo set's `train` split (photographs the benchmark's
  `test` split never shows), validation on other crops of those photographs
  (`cfanet.training.demo_training_data`);
- any other kind (SICE, CF-Net layout, triples): the scenes of `--train-split FILE`, or every
  scene the profile's evaluation `split_file` does not list (with neither, training would see the
  test scenes: refused); validation on `--val-split FILE`, or a seeded 5% (1 to 10 scenes) held
  out of the training scenes.

Output (default `<profile output_dir>/training/<MODEL>_x<S>_<size>` followed by the preset when
it is not the default, the ablation and `key-value` per option, e.g.
`CFANet_x2_official_raw_feedback`, so that variants never share a folder): `last.pt`, `best.pt`,
`history.json`, `curve.png` (the trainer's) and `recipe.json` (the recipe, the model's
configuration and every training value with its source). The checkpoints' `task` entry holds the
recipe (`"recipe": {"preset", "ablation", "options"}`) and the model's `describe()`, from which
`CFANet.from_checkpoint(best.pt)` rebuilds the exact variant. `--resume --output DIR` takes the
preset, ablation and options it is not given from `DIR/recipe.json`.

Several trained variants side by side in one Table 1 (benchmark.toml)::

    [methods."CFANet-raw"]
    target = "cfanet.network:CFANet"
    weights = { x2 = "results/paper/training/CFANet_x2_official_raw_feedback/best.pt" }

    [profiles.paper.grid]
    joint = ["CF-Net", "CFANet", "CFANet-raw"]

Several processes (GPUs, hosts): launch under torchrun (`cfanet.training.distributed`); only
rank 0 prints and writes.

MEF-Net training is not written yet; U2Fusion's needs pretrained VGG-16 features that cannot be
downloaded here: both exit with status 2 and say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.training_presets import PRESETS, Recipe, RecipeError, Sourced

EXIT_USAGE = 2
DEMO_TRAIN_SCENES, DEMO_VAL_SCENES = 16, 4
RECIPE_FILE = "recipe.json"
COMMAND_LINE = "command line"
# The trainer's precisions (cfanet.training.config.PRECISIONS; a test keeps them equal): typed
# here so that building the parser does not import torch.
PRECISION_CHOICES = ("fp32", "bf16", "fp16")
# Command-line options that override a preset's TrainingConfig field (argparse dest -> field).
SETTING_OPTIONS = {"lr": "lr", "batch_size": "batch_size", "patch_size": "patch_size",
                   "steps_per_epoch": "steps_per_epoch", "seed": "seed", "validate_every": "validate_every",
                   "precision": "precision"}


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `train` sub-command to an argparse sub-parser collection; returns its parser."""
    presets = ", ".join(f"{name} ({p.summary})" for name, p in PRESETS.items())
    p = subparsers.add_parser(
        "train", help="train CF-Net, CFANet (or a variant) or an SR model from a preset recipe "
                      "(checkpoints, resume, validation, curve)",
        description="Train a model on the profile's dataset with the project's trainer. The settings come from a "
                    "preset (--preset; default demo on demo datasets, paper on the others), then the explicit "
                    "options below; --dry-run prints every value with its source. CFANet variants: --ablation and "
                    "--option; the recipe is recorded in the checkpoints and in recipe.json.")
    p.add_argument("model", metavar="MODEL", help="a trainable method: a joint network or an SR model "
                                                  "(`cfanet-bench list --json` says which are trainable)")
    p.add_argument("--profile", help="profile whose dataset and sizes to use (default: the config's default)")
    p.add_argument("--preset", choices=tuple(PRESETS),
                   help=f"training recipe: {presets}. Default: demo on demo datasets, paper on the others; the "
                        f"options below override its values")
    p.add_argument("--ablation", metavar="NAME",
                   help="train this ablation of the model (a key of its class's `ablations`, e.g. CFANet's; "
                        "--dry-run lists them); models without variants refuse it")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the model's configuration (CFANetConfig), after the ablation; repeatable. "
                        "E.g. feedback=attended|raw, projection_kernel=none|3, re_guide=true|false, "
                        "share_attention=true|false, reduction=INT; --dry-run lists every key with its values")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="train this many epochs in total (replaces the preset's budget)")
    budget.add_argument("--steps", type=int, help="train this many optimiser steps in total (replaces the "
                                                  "preset's budget)")
    budget.add_argument("--minutes", type=float, help="train for this many minutes (this invocation; replaces the "
                                                      "preset's budget)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last.pt (preset, ablation and options not given "
                        "are read from its recipe.json)")
    p.add_argument("--output", help="folder for checkpoints, history, curve and recipe.json (default: <profile "
                                    "output_dir>/training/<MODEL>_x<S>_<size>[_<preset>][_<ablation>][_<key>-<value>]"
                                    ", the preset only when it is not the default)")
    p.add_argument("--size", choices=("small", "official"), help="model configuration (default: the profile's)")
    p.add_argument("--scale", type=int, help="SR factor (default: the profile's first scale)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: the profile's runtime.device, "
                                                    "auto = cuda when available)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the preset's, as every option below; "
                                            "--dry-run shows the values)")
    p.add_argument("--batch-size", type=int, help="patches per step, over all processes")
    p.add_argument("--patch-size", type=int, help="LR patch side in pixels")
    p.add_argument("--steps-per-epoch", type=int, help="steps per epoch (the preset's may be one pass over the scenes)")
    p.add_argument("--validate-every", type=int, help="validate every N epochs")
    p.add_argument("--seed", type=int, help="seed of the weights, patches, held-out scenes and RNGs")
    p.add_argument("--precision", choices=PRECISION_CHOICES,
                   help="fp32 (every preset's), or bf16 / fp16 autocast on CUDA for models that allow it")
    p.add_argument("--no-amp", action="store_true", help="deprecated: the same as --precision fp32, the default")
    p.add_argument("--train-split", help="file listing the training scenes (non-demo datasets)")
    p.add_argument("--val-split", help="file listing the validation scenes (non-demo datasets)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the recipe (every value with its source), the model's ablations and options and the "
                        "output folder, then exit without training")
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


def training_scenes(profile, scale: int, args, *, seed: int | None = None,
                    progress: bool | None = None) -> tuple[list, list, str]:
    """(training scenes, validation scenes, a one-line description) for the profile's dataset.
    `seed` chooses the held-out validation scenes (default `args.seed`, else 0); `progress` shows
    loading bars (default: unless `args.no_progress`)."""
    from cfanet.data.folders import read_split
    from cfanet.data.scene import DatasetError
    from cfanet.training import demo_training_data, hold_out, load_scenes

    data = profile.dataset
    if data.kind == "demo":
        train, val = demo_training_data(scale, hr_size=data.hr_size, seed=data.seed, num_train=DEMO_TRAIN_SCENES,
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
        seed = (getattr(args, "seed", None) or 0) if seed is None else seed
        train_names, val_names = hold_out(train_names, seed=seed)
    description = (f"{dataset.describe()}: {len(train_names)} training scenes ({source}), "
                   f"{len(val_names)} validation scenes")
    show = not args.no_progress if progress is None else progress
    return load_scenes(dataset, train_names, show), load_scenes(dataset, val_names, show), description


# -- the recipe ---------------------------------------------------------------------------------------

def recorded_recipe(folder: Path, model: str | None = None) -> Recipe | None:
    """The recipe `recipe.json` in `folder` records (None when there is none); with `model`,
    RecipeError when the file records a run of another model."""
    path = folder / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        recipe = Recipe.from_dict(record["recipe"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecipeError(f"{path}: not a recipe written by `cfanet-bench train` ({exc})") from None
    if model is not None and record.get("model") != model:
        raise RecipeError(f"{path}: the run in {folder} trains {record.get('model')}, not {model}")
    return recipe


def resolve_recipe(entry, profile, size: str, args) -> tuple[Recipe, str]:
    """(the recipe of this invocation, where its preset comes from). Checks the ablation and options
    against the model's class (RecipeError naming what is wrong); with `--resume --output DIR`, the
    preset, ablation and options not given come from `DIR/recipe.json`."""
    from pipelines.training_presets import check_ablation, config_class, default_preset, parse_options, variant_config

    cls = entry.cls
    options = parse_options(entry.name, config_class(cls), args.option)
    recorded = recorded_recipe(Path(args.output), entry.name) if args.resume and args.output else None
    if args.preset:
        preset_name, origin = args.preset, "--preset"
    elif recorded is not None:
        preset_name, origin = recorded.preset, f"{Path(args.output) / RECIPE_FILE}"
    else:
        preset_name = default_preset(profile.dataset.kind)
        origin = f"the default for {profile.dataset.kind} datasets"
    ablation = args.ablation if args.ablation or recorded is None else recorded.ablation
    if not args.option and recorded is not None:
        options = dict(recorded.options)
    recipe = Recipe(preset_name, ablation, options)
    check_ablation(entry.name, cls, recipe.ablation)
    if config_class(cls) is not None:
        variant_config(cls, size, recipe.ablation, recipe.options)
    return recipe, origin


def training_values(profile, recipe: Recipe, args) -> dict[str, Sourced]:
    """Every TrainingConfig field with its value and source: the preset's, then the command line's
    (sources "command line --FLAG ...")."""
    from pipelines.training_presets import preset, preset_settings

    values = preset_settings(preset(recipe.preset), profile.demo_training)
    for option, key in SETTING_OPTIONS.items():
        if getattr(args, option, None) is not None:
            values[key] = Sourced(getattr(args, option), f"{COMMAND_LINE} --{option.replace('_', '-')}")
    budget = {"epochs": args.epochs, "max_steps": args.steps, "max_minutes": args.minutes}
    flag = {"epochs": "--epochs", "max_steps": "--steps", "max_minutes": "--minutes"}
    given = [k for k, v in budget.items() if v is not None]
    if given:
        for key, value in budget.items():
            values[key] = Sourced(value, f"{COMMAND_LINE} {flag[given[0]]}" + ("" if key == given[0] else
                                                                               " (replaces the preset's budget)"))
    return values


class RecipeTask:
    """A training task that records the recipe: delegates everything to `task` (a `JointTask` or
    `SRTask`) and adds `"recipe": recipe.to_dict()` to `config()`, which the trainer stores as the
    `task` entry of `last.pt` and `best.pt` (and compares on resume)."""

    def __init__(self, task, recipe: Recipe):
        self.task, self.recipe = task, recipe

    @property
    def kind(self) -> str:
        return self.task.kind

    @property
    def module(self):
        return self.task.module

    @property
    def scale(self) -> int:
        return self.task.scale

    def loss(self, batch):
        return self.task.loss(batch)

    def predict(self, scene):
        return self.task.predict(scene)

    def config(self) -> dict:
        return {**self.task.config(), "recipe": self.recipe.to_dict()}

    def __getattr__(self, name: str):
        # Only reached for attributes not defined here (e.g. `model`, `weights`).
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)


def _loss_settings(recipe: Recipe) -> dict:
    from pipelines.training_presets import preset

    return {k: v.value for k, v in preset(recipe.preset).loss.items()}


def _check_variant(entry, model, size: str, recipe: Recipe) -> None:
    """The created model has the configuration the recipe names (a class whose `create` ignored an
    option would otherwise train another network than the one recorded)."""
    from pipelines.training_presets import config_class, variant_config

    if config_class(entry.cls) is None:
        return
    expected = variant_config(entry.cls, size, recipe.ablation, recipe.options)
    if model.config != expected:
        raise RuntimeError(f"{entry.name}.create built {model.config}, not the recipe's {expected}")


def _task(entry, model, recipe: Recipe):
    from cfanet.losses import CoupledLossWeights
    from cfanet.training import JointTask, SRTask

    if entry.kind == "joint":
        loss = _loss_settings(recipe)
        weights = loss.get("loss_weights")
        return RecipeTask(JointTask(model, weights=CoupledLossWeights(**weights) if weights else None,
                                    win_size=loss.get("ssim_window", 7)), recipe)
    return RecipeTask(SRTask(model), recipe)


def _context_notes(recipe: Recipe, profile, size: str, scale: int) -> list[str]:
    """Note lines where this run differs from what the preset's source trained (dataset, scale,
    model configuration): the paper preset on another profile than the paper's."""
    from pipelines.training_presets import preset

    context = preset(recipe.preset).context
    differences = []
    if "dataset" in context and profile.dataset.kind != str(context["dataset"].value).lower():
        differences.append(f"dataset kind {profile.dataset.kind} (source: {context['dataset'].value})")
    if "scale" in context and scale != context["scale"].value:
        differences.append(f"x{scale} (source: x{context['scale'].value})")
    if "model" in context and size != context["model"].value:
        differences.append(f"the {size} configuration (source: {context['model'].value})")
    if not differences:
        return []
    return [f"note: preset {recipe.preset}'s settings on " + ", ".join(differences)]


def _settings_line(config) -> str:
    budget = ", ".join(f"{k} {getattr(config, k)}" for k in ("epochs", "max_steps", "max_minutes")
                       if getattr(config, k) is not None)
    per_epoch = config.steps_per_epoch or "one pass over the scenes"
    return (f"settings: batch {config.batch_size}, LR patch {config.patch_size}, lr {config.lr:g}, "
            f"x{config.decay_gamma:g} every {config.decay_every} epochs, steps per epoch {per_epoch}, "
            f"validation every {config.validate_every} epoch(s), seed {config.seed}, precision {config.precision}, "
            f"budget {budget}")


def _print_dry_run(entry, recipe: Recipe, origin: str, values: dict[str, Sourced], size: str, scale: int,
                   output: Path) -> None:
    from pipelines.training_presets import (ablations, config_class, format_value, option_fields, preset,
                                            variant_config)

    print(f"recipe: {recipe.describe()} (preset from {origin})")
    print(f"model: {entry.name}, {size}, x{scale}")
    print("training settings:")
    for key, sourced in values.items():
        print(f"  {key} = {sourced.value!r}  [{sourced.source}]")
    if entry.kind == "joint":
        print("loss:")
        for key, sourced in preset(recipe.preset).loss.items():
            print(f"  {key} = {sourced.value!r}  [{sourced.source}]")
    cls = config_class(entry.cls)
    if cls is None:
        print(f"variants: none ({entry.name} takes no --ablation or --option)")
    else:
        config = variant_config(entry.cls, size, recipe.ablation, recipe.options)
        print("configuration: " + ", ".join(f"{k}={format_value(v)}" for k, v in config.to_dict().items()))
        print("ablations (--ablation NAME):")
        for name, overrides in ablations(entry.cls).items():
            print(f"  {name}: " + ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items()))
        print("options (--option KEY=VALUE):")
        for name, option in option_fields(cls).items():
            print(f"  {name}: {option.allowed()}")
    print(f"output: {output}")


def _write_recipe(output: Path, entry, size: str, scale: int, recipe: Recipe, values: dict[str, Sourced],
                  model) -> Path:
    from cfanet.training.state import write_text_atomic
    from pipelines.training_presets import preset

    describe = getattr(model, "describe", None)
    record = {"model": entry.name, "size": size, "scale": scale, "recipe": recipe.to_dict(),
              "description": describe() if callable(describe) else None,
              "settings": {k: {"value": list(v.value) if isinstance(v.value, tuple) else v.value, "source": v.source}
                           for k, v in values.items()},
              "loss": ({k: {"value": v.value, "source": v.source} for k, v in preset(recipe.preset).loss.items()}
                       if entry.kind == "joint" else None)}
    output.mkdir(parents=True, exist_ok=True)
    path = output / RECIPE_FILE
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def cmd_train(args) -> int:
    from cfanet.training import Trainer, TrainingConfig, TrainingError, precision_plan
    from pipelines.config import find_config
    from pipelines.registry import method
    from pipelines.training_presets import default_preset

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
    if args.no_amp:
        if args.precision not in (None, "fp32"):
            return _fail(f"--no-amp (deprecated: --precision fp32) contradicts --precision {args.precision}")
        print("warning: --no-amp is deprecated: training is fp32 unless --precision says otherwise",
              file=sys.stderr)
        args.precision = "fp32"

    profile = config_file.profile(args.profile)
    scale = args.scale or profile.scales[0]
    size = args.size or profile.model_size
    try:
        recipe, origin = resolve_recipe(entry, profile, size, args)
        values = training_values(profile, recipe, args)
        config = TrainingConfig(**{k: v.value for k, v in values.items()})
    except (RecipeError, TrainingError) as exc:
        return _fail(str(exc))
    if config.precision != "fp32" and config.precision not in entry.autocast_dtypes:
        allowed = ", ".join(("fp32", *entry.autocast_dtypes))
        return _fail(f"{entry.name} does not declare {config.precision} autocast (its precisions: {allowed})")
    suffix = recipe.folder_suffix(default_preset(profile.dataset.kind))
    output = Path(args.output) if args.output else (
        Path(profile.output_dir) / "training" / f"{entry.name}_x{scale}_{size}{suffix}")
    if args.dry_run:
        _print_dry_run(entry, recipe, origin, values, size, scale, output)
        for note in _context_notes(recipe, profile, size, scale):
            print(note)
        return 0

    from cfanet.training.distributed import distributed_context

    try:
        device = _device(args.device, profile)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        ctx = distributed_context(device)
    except TrainingError as exc:
        return _fail(str(exc))
    with ctx:
        try:
            precision_plan(config, ctx.device)     # refuses autocast off CUDA before any data is loaded
            train, val, description = training_scenes(profile, scale, args, seed=config.seed,
                                                      progress=not args.no_progress and ctx.is_main)
            variant = {"ablation": recipe.ablation} if recipe.ablation else {}
            model = entry.create(scale, size, seed=config.seed, device=ctx.device, **variant, **recipe.options)
            _check_variant(entry, model, size, recipe)
            task = _task(entry, model, recipe)
            if ctx.is_main:
                print(f"recipe: {recipe.describe()} (preset from {origin})")
                for note in _context_notes(recipe, profile, size, scale):
                    print(note)
                print(f"training {entry.name} ({size}, x{scale}, {task.config()['num_parameters']:,} parameters), "
                      f"{ctx.describe()}")
                print(f"data: {description}")
                print(_settings_line(config))
                given = sorted({v.source.split()[2] for v in values.values() if v.source.startswith(COMMAND_LINE)})
                if given:
                    print(f"from the command line: {', '.join(given)}")
            trainer = Trainer(task, train, val, config, output, progress=not args.no_progress and ctx.is_main,
                              title=f"{entry.name} {size} x{scale}{suffix}", distributed=ctx)
            # recipe.json belongs to the run in the folder: written for a fresh run, or on a resume
            # of the same recipe (the trainer refuses another one); never over another run's.
            if ctx.is_main and (not (output / "last.pt").is_file()
                                or (args.resume and recorded_recipe(output) in (None, recipe))):
                _write_recipe(output, entry, size, scale, recipe, values, model)
            result = trainer.fit(resume=args.resume)
        except (TrainingError, RecipeError) as exc:
            return _fail(str(exc))
        if not ctx.is_main:
            return 0
    best = result.best or {}
    print(f"{result.steps} steps ({result.epochs_completed} epochs, {result.steps_this_run} this run, "
          f"{result.steps_per_second:.2f} steps/s), stopped by {result.stopped_by}")
    if best.get("val_psnr") is not None:
        print(f"best validation: {best['val_psnr']:.2f} dB PSNR, SSIM {best['val_ssim']:.4f}, "
              f"MEF-SSIM {best['val_mef_ssim']:.4f} at step {best['step']}")
    print(f"wrote {result.last_checkpoint} (resumable: --resume --output {result.output_dir})")
    if result.best_checkpoint:
        print(f"wrote {result.best_checkpoint} (best weights; {entry.name}'s from_checkpoint rebuilds this variant)")
    print(f"wrote {result.history_file}")
    print(f"wrote {result.curve}")
    print(f"wrote {output / RECIPE_FILE}")
    return 0
