"""Training presets, variants and the recipe record of `cfanet-bench train` (pipelines/training_presets.py,
pipelines/train_command.py).

- the `paper` preset's CF-Net values equal what CF-Net's released training script sets, read with `ast`
  from ../shared/official/CF-Net (`train.py`, `option.py`, `dataset.py`, `Prepare_Data_HR_LR.m`;
  skipped when absent, failed under CI, as every parity test: tests/official_code.py), and the table of
  the module docstring is the data;
- precedence: preset < the profile's [demo_training] (demo preset) < the command line;
- `--ablation` / `--option` train the variant they name; `best.pt` and `last.pt` rebuild it through
  `CFANet.from_checkpoint` with no flags; the recipe is in the checkpoints' task entry and in
  `recipe.json`; a resume without flags continues the variant; the default folder names the variant;
  the variant runs next to CFANet in one benchmark run through a `[methods."CFANet-raw"]` declaration;
- bad keys and values exit with status 2 and an error line naming the key; CF-Net refuses variants.

The end-to-end run trains the small CFANet for 2 steps on CPU on a demo profile of 96-pixel scenes.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re

import pytest
import torch

from official_code import official_dir
from pipelines.training_presets import (PRESETS, Recipe, RecipeError, config_class, default_preset, parse_options,
                                        preset_settings, preset_table)

SCALE = 2


def _args(argv):
    from pipelines.train_command import add_train_parser

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def _profile(tmp_path, kind="demo", **extra):
    from pipelines.config import parse_config

    dataset = {"kind": kind, "hr_size": 96, "num_scenes": 2} if kind == "demo" else {"kind": kind,
                                                                                  "root": str(tmp_path)}
    table = {"default_profile": "p", "profiles": {"p": {"dataset": dataset, **extra}}}
    return parse_config(table, base_dir=tmp_path).profile()


# -- the paper preset against CF-Net's released script ----------------------------------------------

def _calls(tree, name):
    """Every call of a function or method called `name` (`Adam(...)`, `lr_scheduler.StepLR(...)`)."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)]


def _keywords(call):
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords
            if k.arg and isinstance(k.value, ast.Constant)}


def _self_assignments(tree):
    return {target.attr: ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Attribute) and isinstance(node.value, ast.Constant)}


def _option_defaults(tree):
    return {ast.literal_eval(call.args[0]).lstrip("-"): _keywords(call).get("default")
            for call in _calls(tree, "add_argument") if call.args and isinstance(call.args[0], ast.Constant)}


def test_paper_preset_equals_cfnet_released_training_script():
    from baselines.joint.cfnet import CFNet

    repo = official_dir("CFNET_OFFICIAL_REPO", "CF-Net",
                        required=("train.py", "option.py", "dataset.py", "Prepare_Data_HR_LR.m"))
    train = ast.parse((repo / "train.py").read_text())
    option = _option_defaults(ast.parse((repo / "option.py").read_text()))
    paper = {k: v.value for k, v in PRESETS["paper"].settings.items()}
    loss = {k: v.value for k, v in PRESETS["paper"].loss.items()}

    assigned = _self_assignments(train)
    assert paper["lr"] == assigned["lr"] == 1e-6
    assert paper["epochs"] == assigned["epoch"] == 1000
    (step_lr,) = _calls(train, "StepLR")
    schedule = _keywords(step_lr)
    assert (paper["decay_every"], paper["decay_gamma"]) == (schedule["step_size"], schedule["gamma"])
    (adam,) = _calls(train, "Adam")
    assert set(_keywords(adam)) == set() and [k.arg for k in adam.keywords] == ["lr"]   # PyTorch's other defaults
    defaults = inspect.signature(torch.optim.Adam).parameters
    assert paper["betas"] == tuple(defaults["betas"].default) and paper["eps"] == defaults["eps"].default
    assert paper["weight_decay"] == defaults["weight_decay"].default
    (loader,) = _calls(train, "DataLoader")
    assert ast.unparse(next(k.value for k in loader.keywords if k.arg == "batch_size")) == "args.batch_size"
    assert paper["batch_size"] == option["batch_size"] and paper["patch_size"] == option["patch_size"]
    assert {_keywords(c).get("win_size") for c in _calls(train, "ssim")} == {loss["ssim_window"]}
    source = (repo / "train.py").read_text()
    assert paper["precision"] == "fp32" and "autocast" not in source and ".half()" not in source
    # One epoch = one random crop per `hr` image (steps_per_epoch None: ceil(scenes / batch)).
    dataset = ast.parse((repo / "dataset.py").read_text())
    (length,) = [f for f in ast.walk(dataset) if isinstance(f, ast.FunctionDef) and f.name == "__len__"]
    assert ast.unparse(length.body[-1]) == "return len(self.hr)" and paper["steps_per_epoch"] is None
    # Offline augmentation: 4 rotations (our sampler's dihedral augmentation is the closest).
    prepare = (repo / "Prepare_Data_HR_LR.m").read_text()
    assert re.search(r"USE_AUG\s*=\s*true", prepare) and re.search(r"for angle = 0 : 1 : 3", prepare)
    assert paper["augment"] is True
    # The model the paper extends: CF-Net's official sizes.
    assert PRESETS["paper"].context["model"].value == "official"
    assert CFNet.configs["official"] == {k: option[k] for k in ("num_features", "num_groups", "num_cfbs")}


def test_docstring_table_is_the_preset_data_and_every_value_has_a_source():
    import pipelines.training_presets as module

    assert preset_table("paper") in module.__doc__
    for name, chosen in PRESETS.items():
        for key, sourced in (*chosen.settings.items(), *chosen.loss.items(), *chosen.context.items()):
            assert sourced.source.strip(), f"{name}.{key} has no source"
    ours = {k for k, v in PRESETS["paper"].settings.items() if v.ours}
    assert {"validate_every", "seed"} <= ours and not ours & {"lr", "epochs", "batch_size", "patch_size"}
    assert PRESETS["paper"].loss["loss_weights"].value == {"over": 1.0, "under": 1.0, "iterations": None}


def test_precision_choices_are_the_trainers():
    from cfanet.training.config import PRECISIONS
    from pipelines.train_command import PRECISION_CHOICES

    assert PRECISION_CHOICES == PRECISIONS


def test_every_preset_gives_a_valid_config_and_demo_is_todays_demo(tmp_path):
    from cfanet.training import TrainingConfig, demo_config

    profile = _profile(tmp_path, demo_training={"steps": 7, "patch_size": 24, "batch_size": 2, "seed": 3})
    configs = {name: TrainingConfig(**{k: v.value for k, v in preset_settings(p, profile.demo_training).items()})
               for name, p in PRESETS.items()}
    demo = profile.demo_training
    assert configs["demo"] == demo_config(max_steps=demo.steps, patch_size=demo.patch_size,
                                          batch_size=demo.batch_size, seed=demo.seed)
    assert configs["paper"].lr == 1e-6 and configs["paper"].epochs == 1000 and configs["paper"].max_steps is None
    assert configs["quick"].max_steps == 50 and configs["quick"].epochs is None
    assert all(c.precision == "fp32" for c in configs.values())
    assert default_preset("demo") == "demo" and default_preset("sice") == "paper" and default_preset("cfnet") == "paper"


def test_command_line_overrides_the_preset(tmp_path):
    from pipelines.train_command import training_values

    profile = _profile(tmp_path)
    values = training_values(profile, Recipe("paper"), _args(["CFANet"]))
    assert values["lr"].value == 1e-6 and values["lr"].source.startswith("CF-Net train.py")
    values = training_values(profile, Recipe("paper"), _args(["CFANet", "--lr", "2e-4", "--patch-size", "48",
                                                              "--validate-every", "2", "--steps", "9",
                                                              "--precision", "bf16"]))
    assert values["lr"].value == 2e-4 and values["lr"].source == "command line --lr"
    assert (values["patch_size"].value, values["validate_every"].value, values["precision"].value) == (48, 2, "bf16")
    assert (values["max_steps"].value, values["epochs"].value, values["max_minutes"].value) == (9, None, None)
    assert values["batch_size"].value == 4 and values["decay_every"].value == 200    # not given: the preset's
    demo = training_values(profile, Recipe("demo"), _args(["CFANet", "--seed", "5"]))
    assert demo["seed"].value == 5 and demo["max_steps"].value == profile.demo_training.steps


def test_default_preset_follows_the_dataset_kind(tmp_path):
    from pipelines.registry import method
    from pipelines.train_command import resolve_recipe

    entry = method("CFANet")
    demo_recipe, origin = resolve_recipe(entry, _profile(tmp_path), "small", _args(["CFANet"]))
    assert demo_recipe == Recipe("demo") and "default for demo datasets" in origin
    sice_recipe, _ = resolve_recipe(entry, _profile(tmp_path, kind="sice"), "small", _args(["CFANet"]))
    assert sice_recipe == Recipe("paper")
    chosen, origin = resolve_recipe(entry, _profile(tmp_path, kind="sice"), "small",
                                    _args(["CFANet", "--preset", "quick"]))
    assert chosen.preset == "quick" and origin == "--preset"


# -- variants ---------------------------------------------------------------------------------------

def test_options_are_parsed_by_the_configuration_field_types():
    from baselines.joint.cfnet import CFNet
    from cfanet.network import CFANet, CFANetConfig

    assert config_class(CFANet) is CFANetConfig and config_class(CFNet) is None
    parsed = parse_options("CFANet", CFANetConfig, ["feedback=raw", "projection_kernel=none", "re_guide=false",
                                                     "share_attention=TRUE", "reduction=8"])
    assert parsed == {"feedback": "raw", "projection_kernel": None, "re_guide": False, "reduction": 8,
                      "share_attention": True}
    assert list(parsed) == sorted(parsed)
    assert parse_options("CFANet", CFANetConfig, ["projection_kernel=3"]) == {"projection_kernel": 3}
    for bad, key in (("feedback=bogus", "feedback"), ("re_guide=maybe", "re_guide"), ("reduction=x", "reduction"),
                     ("nonsense=1", "nonsense"), ("feedback", "feedback")):
        with pytest.raises(RecipeError, match=key):
            parse_options("CFANet", CFANetConfig, [bad])
    with pytest.raises(RecipeError, match="attended|raw"):
        parse_options("CFANet", CFANetConfig, ["feedback=bogus"])


@pytest.mark.parametrize("argv, named", [
    (["CFANet", "--option", "feedbak=raw"], ["feedbak", "feedback"]),
    (["CFANet", "--option", "feedback=bogus"], ["feedback", "attended|raw"]),
    (["CFANet", "--option", "projection_kernel=5"], ["projection_kernel", "None", "3"]),
    (["CFANet", "--option", "re_guide=perhaps"], ["re_guide", "true|false"]),
    (["CFANet", "--option", "reduction=0"], ["reduction", "positive"]),
    (["CFANet", "--ablation", "no_such_thing"], ["no_such_thing", "raw_feedback"]),
    (["CF-Net", "--option", "feedback=raw"], ["CF-Net has no variants"]),
    (["CF-Net", "--ablation", "raw_feedback"], ["CF-Net has no variants"]),
    (["CFANet", "--precision", "bf16", "--no-amp"], ["--no-amp", "--precision bf16"]),
])
def test_bad_recipes_exit_2_with_one_error_line_naming_the_key(argv, named, tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CFANET_BENCH_CONFIG", raising=False)
    assert main(["train", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    for word in named:
        assert word in err[0]
    assert not (tmp_path / "results").exists()


def test_ablation_names_are_the_classs(tmp_path, monkeypatch, capsys):
    from cfanet.network import CFANet
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CFANET_BENCH_CONFIG", raising=False)
    for name in CFANet.ablations:
        assert main(["train", "CFANet", "--ablation", name, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"ablation {name}," in out and f"CFANet_x2_small_{name}" in out


def test_no_amp_is_a_deprecated_alias_of_fp32(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CFANET_BENCH_CONFIG", raising=False)
    assert main(["train", "CF-Net", "--no-amp", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "deprecated" in captured.err and "precision = 'fp32'  [command line --precision]" in captured.out


# -- end to end: train a variant, rebuild it, resume it, benchmark it -------------------------------

CONFIG = """
default_profile = "demo"
[profiles.demo]
scales = [2]
model_size = "small"
output_dir = "results"
cache_dir = "cache"
[profiles.demo.dataset]
kind = "demo"
num_scenes = 1
hr_size = 96
[profiles.demo.grid]
sr = []
mef = []
joint = ["CFANet-raw"]
[methods."CFANet-raw"]
target = "cfanet.network:CFANet"
weights = {{ x2 = "{weights}" }}
"""

VARIANT = ["--ablation", "raw_feedback", "--option", "reduction=8", "--option", "projection_kernel=3",
           "--option", "share_attention=true"]
FOLDER = "CFANet_x2_small_raw_feedback_projection_kernel-3_reduction-8_share_attention-true"
FAST = ["--steps-per-epoch", "1", "--patch-size", "16", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def trained_variant(tmp_path_factory):
    """A 2-step run of a CFANet variant with the default output folder; (config file, folder, stdout)."""
    import contextlib
    import io
    import os

    from pipelines.cli import main

    root = tmp_path_factory.mktemp("variant")
    folder = root / "results" / "training" / FOLDER
    config = root / "benchmark.toml"
    config.write_text(CONFIG.format(weights=folder / "best.pt"))
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out):
            status = main(["--config", str(config), "train", "CFANet", *VARIANT, *FAST, "--steps", "2"])
    finally:
        os.chdir(cwd)
    assert status == 0, out.getvalue()
    return config, folder, out.getvalue()


def test_variant_is_printed_trained_recorded_and_rebuilt_from_both_checkpoints(trained_variant):
    from cfanet.network import CFANet, CFANetConfig
    from cfanet.training.state import load_training_checkpoint

    _config, folder, printed = trained_variant
    expected = CFANetConfig.named("small", "raw_feedback", reduction=8, projection_kernel=3, share_attention=True)
    assert expected != CFANetConfig.named("small")
    assert ("recipe: preset demo, ablation raw_feedback, options projection_kernel=3, reduction=8, "
            "share_attention=true") in printed
    recipe = {"preset": "demo", "ablation": "raw_feedback",
              "options": {"projection_kernel": 3, "reduction": 8, "share_attention": True}}
    for name in ("best.pt", "last.pt"):
        model = CFANet.from_checkpoint(folder / name)            # no flags
        assert model.config == expected and model.scale == SCALE
        assert model.describe() == {"scale": SCALE, "config": expected.to_dict()}
        state = load_training_checkpoint(folder / name)
        assert state["task"]["recipe"] == recipe
        assert state["config"]["patch_size"] == 16 and state["config"]["lr"] == 5e-4  # command line, preset
    record = json.loads((folder / "recipe.json").read_text())
    assert record["recipe"] == recipe and record["description"]["config"] == expected.to_dict()
    assert record["settings"]["patch_size"] == {"value": 16, "source": "command line --patch-size"}
    assert record["settings"]["lr"]["source"] == "ours: cfanet.training.demo_config"


def test_resume_without_flags_continues_the_variant_and_another_variant_is_refused(trained_variant, tmp_path,
                                                                                     capsys):
    import shutil

    from cfanet.network import CFANet
    from pipelines.cli import main

    config, folder, _printed = trained_variant
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    base = ["--config", str(config), "train", "CFANet", *FAST, "--output", str(copy)]
    assert main([*base, "--resume", "--steps", "3", "--ablation", "current_only"]) == 2
    assert "trained another model" in capsys.readouterr().err
    assert json.loads((copy / "recipe.json").read_text())["recipe"]["ablation"] == "raw_feedback"   # kept
    assert main([*base, "--resume", "--steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert "ablation raw_feedback" in printed and "3 steps" in printed
    assert CFANet.from_checkpoint(copy / "last.pt").config.feedback == "raw"


def test_trained_variant_runs_in_the_benchmark_as_a_declared_method(trained_variant, monkeypatch, capsys):
    from pipelines.cli import main
    from pipelines.config import load_config
    from pipelines.registry import method

    config, _folder, _printed = trained_variant
    spec = method("CFANet-raw", load_config(config))
    model = spec.load(load_config(config).profile().weights["CFANet-raw.x2"], scale=SCALE)
    assert model.config.feedback == "raw" and model.config.reduction == 8
    monkeypatch.chdir(config.parent)
    assert main(["--config", str(config), "run", "CFANet-raw", "--no-report"]) == 0
    assert re.search(r"^CFANet-raw\s+\d", capsys.readouterr().out, flags=re.M)
