"""Training recipes for `cfanet-bench train`: named presets (data, each value sourced) and the
model variants (ablations and configuration options) a run trains.

A recipe is a preset, plus an ablation and options for models that have variants. Where each
value of a run comes from, lowest precedence first:

1. the preset (`--preset`, default `demo` for datasets of kind `demo`, `paper` for every other
   kind); the `demo` preset then applies the profile's `[demo_training]` table;
2. the command line (`--lr`, `--batch-size`, `--patch-size`, `--steps-per-epoch`, `--seed`,
   `--validate-every`, `--precision`, and one budget of `--epochs` / `--steps` / `--minutes`,
   which replaces the preset's whole budget).

Every `TrainingConfig` field a preset does not name keeps its base's value (`TrainingConfig`'s
default for `paper`, `demo_config`'s for `demo` and `quick`).
`cfanet-bench train MODEL --dry-run` prints every value with its source.

Presets:

- `paper`: the CFANet paper where it says something, CF-Net's released training script
  (ytZhang99/CF-Net `train.py`, `option.py`, `dataset.py`, `Prepare_Data_HR_LR.m`) for the rest,
  and our own choice, marked "ours", where neither says anything. The paper states only the
  dataset, the scale, the loss and the GPU: those that are not training settings (data, scale,
  model size) come from the profile (the `paper` profile: SICE, x2 first, official configuration),
  and the command prints a note when the profile differs from the paper's.
- `demo`: today's demo settings, ours: the values of `cfanet.training.demo_config` (for
  minutes-long CPU runs), then the profile's `[demo_training]` table (`steps` -> `max_steps`,
  `patch_size`, `batch_size`, `seed`).
- `quick`: a sanity run on any dataset before a long one, ours: `demo_config`'s values with
  50 steps in epochs of 10 steps (validated after each), so that data, model, loss, checkpoints
  and the curve are exercised in a few minutes.

The `paper` preset (`preset_table("paper")`; tests/test_train_presets.py checks the CF-Net values
against the official files and this table against the data below):

| setting | value | source |
| --- | --- | --- |
| batch_size | 4 | CF-Net option.py: --batch_size default 4 |
| patch_size | 64 | CF-Net option.py: --patch_size default 64 (LR pixels; HR patches are scale x 64) |
| augment | True | closest to CF-Net Prepare_Data_HR_LR.m (USE_AUG: 4 rotations, offline, before downscaling): our sampler gives each patch one of the 8 flips/rotations |
| steps_per_epoch | None | CF-Net dataset.py + train.py: one random crop per scene and epoch, batches of batch_size (ceil(scenes / batch) steps) |
| lr | 1e-06 | CF-Net train.py: self.lr = 0.000001 |
| betas | (0.9, 0.999) | CF-Net train.py: Adam(params, lr=self.lr), PyTorch's default betas |
| eps | 1e-08 | CF-Net train.py: Adam(params, lr=self.lr), PyTorch's default eps |
| weight_decay | 0 | CF-Net train.py: Adam(params, lr=self.lr), PyTorch's default (none) |
| decay_every | 200 | CF-Net train.py: StepLR(step_size=200), stepped once per epoch |
| decay_gamma | 0.5 | CF-Net train.py: StepLR(gamma=0.5) |
| epochs | 1000 | CF-Net train.py: self.epoch = 1000 |
| max_steps | None | ours: the budget is the epochs only |
| max_minutes | None | ours: the budget is the epochs only |
| validate_every | 5 | ours (CF-Net's train.py validates after every epoch with -v and keeps a snapshot every 5 epochs) |
| validate_at_start | True | ours (the untrained starting point on the curve) |
| seed | 0 | ours (CF-Net main.py seeds torch with option.py's 1, but its crops use Python's unseeded random: nothing to reproduce) |
| precision | fp32 | CF-Net train.py (no autocast); the paper's GTX 1070 Ti |
| loss | coupled SSIM | CFANet paper Sec. 2.3 (CF-Net train.py's loss) |
| loss_weights | all 1 | CFANet paper Sec. 2.3: every lambda = 1 |
| ssim_window | 7 | CF-Net train.py: ssim(..., win_size=7) |
| dataset | SICE | CFANet paper (from the profile, not set here) |
| scale | x2 | CFANet paper, Table 1 (from the profile or --scale) |
| model | official configuration | CF-Net option.py sizes (64 features, 6 groups, 3 iterations), which the paper extends (from the profile or --size) |
| hardware | one GTX 1070 Ti | CFANet paper |

Variants (models whose class declares them; CFANet does, CF-Net and the SR models do not):

- `--ablation NAME`: one of the class's `ablations` (CFANet: `cfanet.network.ABLATIONS`);
- `--option KEY=VALUE` (repeatable): a field of the class's configuration dataclass (the return
  type of its `config` property; CFANet: `CFANetConfig`), applied after the ablation. Values are
  parsed by the field's type: `true`/`false` for booleans, integers, `none` where the field may be
  None, and for text fields one of the values the dataclass lists in its ClassVar named after the
  field (`feedback` -> `FEEDBACKS`). The resulting configuration is validated by the dataclass.

The recipe (`{"preset", "ablation", "options"}`) is recorded in the task entry of every
checkpoint and in `recipe.json` beside them; the model's own description (`describe()`) in the
task entry rebuilds the exact variant through `from_checkpoint` with no flags.

This module imports neither torch nor the models: the command-line parser reads its preset names.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEMO_DATASET_KIND = "demo"
OURS = "ours"


class RecipeError(ValueError):
    """A preset, ablation or option that cannot be used; the message names it and the allowed values."""


@dataclass(frozen=True)
class Sourced:
    """A value and where it comes from (a file and the line that sets it, the paper, or "ours ...")."""

    value: Any
    source: str

    @property
    def ours(self) -> bool:
        return self.source.startswith(OURS)


@dataclass(frozen=True)
class Preset:
    """A named training recipe.

    - `settings`: `TrainingConfig` fields, each `Sourced`;
    - `base`: "defaults" (`TrainingConfig()`'s values under `settings`) or "demo_config"
      (`cfanet.training.demo_config()`'s values under `settings`);
    - `profile_demo_training`: apply the profile's `[demo_training]` table over the preset;
    - `loss`: the joint models' loss settings (`ssim_window`, `loss_weights` as
      `CoupledLossWeights` fields), each `Sourced`;
    - `context`: facts of the source that are not settings here (dataset, scale, model, GPU).
    """

    name: str
    summary: str
    settings: Mapping[str, Sourced] = field(default_factory=dict)
    base: str = "defaults"
    profile_demo_training: bool = False
    loss: Mapping[str, Sourced] = field(default_factory=dict)
    context: Mapping[str, Sourced] = field(default_factory=dict)


CFNET_TRAIN = "CF-Net train.py"
CFNET_OPTION = "CF-Net option.py"
PAPER_SOURCE = "CFANet paper"
ADAM_DEFAULT = f"{CFNET_TRAIN}: Adam(params, lr=self.lr), PyTorch's default"
# The paper's loss (Sec. 2.3) and CF-Net's: every lambda 1, SSIM window 7 (see `cfanet.losses`).
PAPER_LOSS: Mapping[str, Sourced] = {
    "loss": Sourced("coupled SSIM", f"{PAPER_SOURCE} Sec. 2.3 ({CFNET_TRAIN}'s loss)"),
    "loss_weights": Sourced({"over": 1.0, "under": 1.0, "iterations": None},
                            f"{PAPER_SOURCE} Sec. 2.3: every lambda = 1"),
    "ssim_window": Sourced(7, f"{CFNET_TRAIN}: ssim(..., win_size=7)"),
}

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "paper",
        "the CFANet paper where it says something, CF-Net's released training script for the rest",
        settings={
            "batch_size": Sourced(4, f"{CFNET_OPTION}: --batch_size default 4"),
            "patch_size": Sourced(64, f"{CFNET_OPTION}: --patch_size default 64 (LR pixels; HR patches are "
                                      f"scale x 64)"),
            "augment": Sourced(True, "closest to CF-Net Prepare_Data_HR_LR.m (USE_AUG: 4 rotations, offline, before "
                                     "downscaling): our sampler gives each patch one of the 8 flips/rotations"),
            "steps_per_epoch": Sourced(None, "CF-Net dataset.py + train.py: one random crop per scene and epoch, "
                                             "batches of batch_size (ceil(scenes / batch) steps)"),
            "lr": Sourced(1e-6, f"{CFNET_TRAIN}: self.lr = 0.000001"),
            "betas": Sourced((0.9, 0.999), f"{ADAM_DEFAULT} betas"),
            "eps": Sourced(1e-8, f"{ADAM_DEFAULT} eps"),
            "weight_decay": Sourced(0.0, f"{ADAM_DEFAULT} (none)"),
            "decay_every": Sourced(200, f"{CFNET_TRAIN}: StepLR(step_size=200), stepped once per epoch"),
            "decay_gamma": Sourced(0.5, f"{CFNET_TRAIN}: StepLR(gamma=0.5)"),
            "epochs": Sourced(1000, f"{CFNET_TRAIN}: self.epoch = 1000"),
            "max_steps": Sourced(None, f"{OURS}: the budget is the epochs only"),
            "max_minutes": Sourced(None, f"{OURS}: the budget is the epochs only"),
            "validate_every": Sourced(5, f"{OURS} (CF-Net's train.py validates after every epoch with -v and keeps "
                                         f"a snapshot every 5 epochs)"),
            "validate_at_start": Sourced(True, f"{OURS} (the untrained starting point on the curve)"),
            "seed": Sourced(0, f"{OURS} (CF-Net main.py seeds torch with option.py's 1, but its crops use Python's "
                               f"unseeded random: nothing to reproduce)"),
            "precision": Sourced("fp32", f"{CFNET_TRAIN} (no autocast); the paper's GTX 1070 Ti"),
        },
        loss=PAPER_LOSS,
        context={
            "dataset": Sourced("SICE", f"{PAPER_SOURCE} (from the profile, not set here)"),
            "scale": Sourced(2, f"{PAPER_SOURCE}, Table 1 (from the profile or --scale)"),
            "model": Sourced("official", "CF-Net option.py sizes (64 features, 6 groups, 3 iterations), which the "
                                         "paper extends (from the profile or --size)"),
            "hardware": Sourced("one GTX 1070 Ti", PAPER_SOURCE),
        },
    ),
    "demo": Preset(
        "demo",
        "ours: cfanet.training.demo_config, then the profile's [demo_training] table; minutes on a CPU",
        base="demo_config", profile_demo_training=True, loss=PAPER_LOSS,
    ),
    "quick": Preset(
        "quick",
        "ours: a sanity run before a long one: demo_config's values, 50 steps in epochs of 10, validated after each",
        settings={
            "max_steps": Sourced(50, f"{OURS}: minutes on a CPU, seconds on a GPU"),
            "steps_per_epoch": Sourced(10, f"{OURS}: 5 validations along the run"),
            "epochs": Sourced(None, f"{OURS}: the budget is max_steps"),
            "max_minutes": Sourced(None, f"{OURS}: the budget is max_steps"),
        },
        base="demo_config", loss=PAPER_LOSS,
    ),
}

# The profile's [demo_training] keys -> TrainingConfig fields (the `demo` preset).
DEMO_TRAINING_FIELDS = {"steps": "max_steps", "patch_size": "patch_size", "batch_size": "batch_size", "seed": "seed"}


def default_preset(dataset_kind: str) -> str:
    """The preset a run takes without `--preset`: `demo` on demo datasets, `paper` on the others."""
    return "demo" if dataset_kind == DEMO_DATASET_KIND else "paper"


def preset(name: str) -> Preset:
    """The preset called `name`; RecipeError listing the known ones otherwise."""
    if name not in PRESETS:
        raise RecipeError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_settings(chosen: Preset, demo_training=None) -> dict[str, Sourced]:
    """Every `TrainingConfig` field's value for `chosen`, with its source: the base (TrainingConfig's
    defaults or `demo_config`), the preset's settings, then, for presets that take it, the profile's
    `[demo_training]` table `demo_training` (a `DemoTrainingConfig`). Imports `cfanet.training`."""
    from cfanet.training import TrainingConfig, demo_config

    if chosen.base == "demo_config":
        base, origin = demo_config(), f"{OURS}: cfanet.training.demo_config"
    else:
        base, origin = TrainingConfig(), f"{OURS}: TrainingConfig default"
    values = {f.name: Sourced(getattr(base, f.name), origin) for f in dataclasses.fields(base)}
    values.update(chosen.settings)
    if chosen.profile_demo_training and demo_training is not None:
        for key, name in DEMO_TRAINING_FIELDS.items():
            values[name] = Sourced(getattr(demo_training, key), f"{OURS}: the profile's [demo_training] {key}")
    return values


def _cell(value: Any) -> str:
    if isinstance(value, Mapping) and set(value) == {"over", "under", "iterations"}:
        if value["over"] == value["under"] == 1.0 and value["iterations"] is None:
            return "all 1"
    if isinstance(value, float):
        return f"{value:g}" if value >= 1e-4 or value == 0 else f"{value:.0e}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "(" + ", ".join(_cell(v) for v in value) + ")"
    return str(value)


def preset_table(name: str) -> str:
    """The preset's own values (settings, loss, context) as a Markdown table: setting, value, source."""
    chosen = preset(name)
    lines = ["| setting | value | source |", "| --- | --- | --- |"]
    for key, sourced in (*chosen.settings.items(), *chosen.loss.items(), *chosen.context.items()):
        value = sourced.value
        if key == "scale" and isinstance(value, int):
            value = f"x{value}"
        elif key == "model" and value == "official":
            value = "official configuration"
        lines.append(f"| {key} | {_cell(value)} | {sourced.source} |")
    return "\n".join(lines)


# -- variants -----------------------------------------------------------------------------------------

def config_class(model_class) -> type | None:
    """The configuration dataclass of a model class with variants: the return type of its `config`
    property (CFANet: `CFANetConfig`); None for classes without one (CF-Net, the SR models)."""
    prop = inspect.getattr_static(model_class, "config", None)
    if not isinstance(prop, property) or prop.fget is None:
        return None
    try:
        hint = typing.get_type_hints(prop.fget).get("return")
    except Exception:  # noqa: BLE001 - an unresolvable annotation: no variants
        return None
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def ablations(model_class) -> Mapping[str, Mapping[str, Any]]:
    """The class's named ablations (`ablations`, e.g. `CFANet.ablations`), {} if it has none."""
    return getattr(model_class, "ablations", None) or {}


@dataclass(frozen=True)
class OptionField:
    """One configuration field settable with `--option KEY=VALUE`: its type and allowed values."""

    name: str
    type: Any
    choices: tuple[str, ...] | None = None

    @property
    def optional(self) -> bool:
        return _is_optional(self.type)

    @property
    def base_type(self) -> Any:
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        return args[0] if self.optional and len(args) == 1 else self.type

    def allowed(self) -> str:
        """The allowed values in words, e.g. "attended|raw", "true|false", "none|an integer"."""
        base = self.base_type
        if self.choices:
            text = "|".join(self.choices)
        elif base is bool:
            text = "true|false"
        elif base is int:
            text = "an integer"
        elif base is float:
            text = "a number"
        else:
            text = "text"
        return f"none|{text}" if self.optional else text

    def parse(self, text: str) -> Any:
        """The value of `text` for this field; RecipeError naming the key and the allowed values."""
        raw = text.strip()
        if self.optional and raw.lower() in ("none", "null"):
            return None
        base = self.base_type
        try:
            if base is bool:
                lowered = raw.lower()
                if lowered in ("true", "yes", "on", "1"):
                    return True
                if lowered in ("false", "no", "off", "0"):
                    return False
                raise ValueError
            if base is int:
                return int(raw)
            if base is float:
                return float(raw)
        except ValueError:
            raise RecipeError(f"--option {self.name}={text}: {self.name} takes {self.allowed()}") from None
        if self.choices is not None and raw not in self.choices:
            raise RecipeError(f"--option {self.name}={text}: {self.name} takes {self.allowed()}")
        return raw


def _is_optional(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def option_fields(cls: type) -> dict[str, OptionField]:
    """The fields of configuration dataclass `cls` by name, with their types and, for text fields,
    the allowed values its ClassVar named after the field lists (`feedback` -> `FEEDBACKS`)."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        listed = getattr(cls, f"{f.name.upper()}S", None)
        is_list = isinstance(listed, (tuple, list)) and all(isinstance(c, str) for c in listed)
        choices = tuple(listed) if is_list else None
        found[f.name] = OptionField(f.name, hints.get(f.name, f.type), choices)
    return found


def parse_options(model_name: str, cls: type | None, items: Sequence[str]) -> dict[str, Any]:
    """`--option KEY=VALUE` items as typed values of `cls`'s fields, sorted by key; RecipeError naming
    the key (and the known keys or allowed values) for anything invalid, and for models without a
    configuration dataclass (`cls` None)."""
    if not items:
        return {}
    if cls is None:
        raise RecipeError(f"{model_name} has no variants: --option is for models with a configuration of options "
                          f"(CFANet); got --option {items[0]}")
    known = option_fields(cls)
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--option {item!r}: expected KEY=VALUE; keys of {model_name}: {', '.join(known)}")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise RecipeError(f"--option {item}: {model_name} has no option {key!r}{hint} (options: "
                              f"{', '.join(known)})")
        if key in values:
            raise RecipeError(f"--option {key} given twice")
        values[key] = known[key].parse(text)
    return dict(sorted(values.items()))


def check_ablation(model_name: str, model_class, name: str | None) -> None:
    """RecipeError unless `name` is None or one of the class's ablations (listing them)."""
    if name is None:
        return
    known = ablations(model_class)
    if not known:
        raise RecipeError(f"{model_name} has no variants: --ablation is for models that declare ablations "
                          f"(CFANet); got --ablation {name}")
    if name not in known:
        raise RecipeError(f"--ablation {name}: {model_name} has no ablation {name!r}; known: {', '.join(known)}")


def variant_config(model_class, size: str, ablation: str | None, options: Mapping[str, Any]):
    """The configuration dataclass instance of `model_class` in configuration `size` with `ablation`
    and `options` applied in that order (as `CFANet.create` builds it); RecipeError with the
    dataclass's own message (which names the field and its allowed values) if it is invalid."""
    cls = config_class(model_class)
    configs = getattr(model_class, "configs", {})
    if size not in configs:
        raise RecipeError(f"{model_class.__name__}: unknown configuration {size!r}; known: {', '.join(configs)}")
    values = {**configs[size], **(ablations(model_class)[ablation] if ablation else {}), **options}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        given = " ".join(([f"--ablation {ablation}"] if ablation else []) +
                         [f"--option {k}={format_value(v)}" for k, v in options.items()])
        raise RecipeError(f"{given or size}: {exc}") from None


def format_value(value: Any) -> str:
    """An option value as written on the command line (`true`, `none`, `3`, `raw`)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Recipe:
    """What a run trains beyond the model's name and size: the preset and the variant."""

    preset: str
    ablation: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as recorded in checkpoints' task entry and in `recipe.json`."""
        return {"preset": self.preset, "ablation": self.ablation, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Recipe":
        return cls(str(values["preset"]), values.get("ablation"), dict(values.get("options") or {}))

    def describe(self) -> str:
        """One line: "preset paper, ablation raw_feedback, options reduction=8"."""
        options = ", ".join(f"{k}={format_value(v)}" for k, v in self.options.items()) or "none"
        return f"preset {self.preset}, ablation {self.ablation or 'none'}, options {options}"

    def folder_suffix(self, default_preset: str) -> str:
        """What tells this recipe's default output folder from the plain run's: the preset when it is
        not the default, the ablation, then `key-value` per option (e.g. "_raw_feedback_reduction-8")."""
        parts = [self.preset] if self.preset != default_preset else []
        parts += [self.ablation] if self.ablation else []
        parts += [f"{k}-{format_value(v)}" for k, v in self.options.items()]
        return "".join(f"_{p}" for p in parts)


__all__ = [
    "DEMO_TRAINING_FIELDS", "OptionField", "PRESETS", "Preset", "Recipe", "RecipeError", "Sourced", "ablations",
    "check_ablation", "config_class", "default_preset", "format_value", "option_fields", "parse_options", "preset",
    "preset_settings", "preset_table", "variant_config",
]
