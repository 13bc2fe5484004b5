"""`benchmark.toml` -> typed, validated configuration objects.

The file is read with `tomllib` and checked once, here: every unknown key and every bad value raises
`ConfigError` naming the file and the dotted key. The rest of the code receives dataclasses.

Layout::

    default_profile = "demo"
    [profiles.<name>]            # any number of profiles; `demo` and `paper` ship
    scales = [2]
    model_size = "small" | "official"
    output_dir = "results/demo"  # relative paths are relative to the TOML file's folder
    cache_dir = "cache"
    [profiles.<name>.dataset]    # kind = "demo" | "sice" | "cfnet" | "triples"
    [profiles.<name>.metrics]    # convention = "paper" | "sr"
    [profiles.<name>.runtime]    # device, amp, amp_dtype, channels_last, batch_size, tile_size,
                                 # tile_overlap, workers, executor, ray_address, gpus_per_task, cpus_per_task
    [profiles.<name>.weights]    # method name -> checkpoint path (per scale: "RCAN.x2")
    [profiles.<name>.demo_training]  # steps and patch size for demo weights
    [profiles.<name>.grid]       # sr, mef, joint: the methods that enter the comparison
                                 # (default: the paper's 4 SR x 4 MEF both ways + 2 joint)
    [methods.<NAME>]             # your own method: target = "package.module:Class", its kind
                                 # (when the class does not declare one) and weights
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CONFIG_ENV_VAR = "CFANET_BENCH_CONFIG"
CONFIG_FILE_NAME = "benchmark.toml"


class ConfigError(ValueError):
    """Invalid configuration; the message names the file and the dotted key."""

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


@dataclass(frozen=True)
class DatasetConfig:
    """Where the scenes come from. `root` is needed for every kind but `demo`."""

    kind: Literal["demo", "sice", "cfnet", "triples"] = "demo"
    root: Path | None = None
    # demo: how many scenes of which HR size, generated deterministically from `seed`
    seed: int = 0
    num_scenes: int = 6
    hr_size: int = 192
    # sice: folder of labels (default: a `Label` folder beside the scene folders, or each part's own),
    # the part folders (default: every `Part*` folder under root), optional resize of the HR images
    label_dir: Path | None = None
    parts: tuple[str, ...] | None = None
    hr_long_side: int | None = None
    # any kind: a text file listing the (test) scene names to use, one per line; or `split`, the name
    # of a split shipped with the package (`cfanet.data.splits`: "sice-default"), which sets split_file
    split_file: Path | None = None
    split: str | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """PSNR/SSIM convention of the main table, and extra conventions also reported."""

    convention: Literal["paper", "sr"] = "paper"
    also: tuple[Literal["paper", "sr"], ...] = ("sr",)


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how inference runs. `tile_size = 0` means choose automatically.

    `amp` autocasts inference to `amp_dtype` on CUDA, for the methods whose tests show that it
    changes PSNR by less than 0.05 dB (`autocast_dtypes` on each method class); the others, and
    every metric, stay fp32. `channels_last` applies on CUDA. `batch_size` scenes of equal size go
    through a model together. `executor = "ray"` fans stage batches out over a Ray cluster
    (`ray_address`: empty = $RAY_ADDRESS or a local instance), `gpus_per_task` GPUs each when
    the cluster has GPUs and `cpus_per_task` CPU threads each (CPU convolutions sum in an order
    that depends on the thread count, so equal counts give bit-identical stage outputs); `workers`
    bounds the batches in flight per executor slot.

    `protocol` is the inference protocol of every method (`cfanet.protocols`): "exact" (whole
    image, one rounding by the harness) or "official" (each method as its release script runs it,
    bit for bit; methods without an official protocol run exact); `protocols` sets it per method
    (method name -> protocol) over `protocol`.
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = False
    amp_dtype: Literal["bf16", "fp16"] = "bf16"
    channels_last: bool = True
    batch_size: int = 1
    tile_size: int = 0
    tile_overlap: int = 0  # 0: each model's own tested default
    workers: int = 1
    executor: Literal["local", "ray"] = "local"
    ray_address: str = ""
    gpus_per_task: float = 1.0
    cpus_per_task: int = 0  # 0: the driver's torch thread count (CPU outputs then equal the local executor's)
    protocol: Literal["exact", "official"] = "exact"
    protocols: dict[str, Literal["exact", "official"]] = field(default_factory=dict)

    def protocol_of(self, method: str) -> str:
        """The protocol asked for `method`: its entry in `protocols` (names compared case-insensitively),
        else `protocol`."""
        lowered = method.lower()
        return next((p for name, p in self.protocols.items() if name.lower() == lowered), self.protocol)


@dataclass(frozen=True)
class DemoTrainingConfig:
    """Short training that gives demo weights to deep models that have none configured
    (`pipelines.demo_training`): `steps` optimiser steps on `batch_size` LR patches of `patch_size`
    pixels; every other setting is `cfanet.training.demo_config`'s.

    The defaults are the shipped `[profiles.demo.demo_training]` (tests/test_demo_weights.py keeps
    the two equal). Training is most of a cold demo run: 16-pixel patches (SwinIR's 8-pixel window
    twice) cost about a third of 32-pixel ones per step, and 200 steps of them leave every demo
    model well above its initialisation on held-out scenes (same test); after 100, CF-Net's
    held-out PSNR is still below its initialisation's."""

    steps: int = 200
    patch_size: int = 16
    batch_size: int = 4
    seed: int = 0


@dataclass(frozen=True)
class GridConfig:
    """Which methods enter the comparison, by kind, in table order. A kind left out takes the
    paper's methods of that kind (those whose descriptor has a `paper_order`)."""

    sr: tuple[str, ...] | None = None
    mef: tuple[str, ...] | None = None
    joint: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MethodDeclaration:
    """A method declared in `benchmark.toml` (`[methods.NAME]`): its class as "module:Class"; its
    kind and whether it loads weights when the class carries no `register_method` descriptor; its
    weights (one path, or a table by scale: `{ x2 = "...", x4 = "..." }`), used by every profile
    that does not configure `NAME` / `NAME.xS` itself."""

    target: str
    kind: Literal["sr", "mef", "joint"] | None = None
    deep: bool | None = None
    scale_specific: bool | None = None
    weights: Path | dict[str, Path] | None = None
    note: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    scales: tuple[int, ...] = (2,)
    model_size: Literal["small", "official"] = "small"
    output_dir: Path = Path("results")
    cache_dir: Path = Path("cache")
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    demo_training: DemoTrainingConfig = field(default_factory=DemoTrainingConfig)
    weights: dict[str, Path] = field(default_factory=dict)
    grid: GridConfig = field(default_factory=GridConfig)


@dataclass(frozen=True)
class BenchmarkConfig:
    source: str
    default_profile: str
    profiles: dict[str, Profile]
    methods: dict[str, MethodDeclaration] = field(default_factory=dict)

    def profile(self, name: str | None = None) -> Profile:
        """The named profile (default: `default_profile`); unknown names list the known ones."""
        name = name or self.default_profile
        if name not in self.profiles:
            raise ConfigError(self.source, "profiles", f"no profile {name!r}; defined: {', '.join(sorted(self.profiles))}")
        return self.profiles[name]


# ---------------------------------------------------------------------------------------------
# Generic dataclass builder with key-naming errors

def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a table of {_describe(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "none (omit the key)"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path string"}.get(tp, str(tp))


def _convert(value, tp, key: str, ctx: "_Context"):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None):
                continue
            try:
                return _convert(value, option, key, ctx)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(ctx.source, key, f"expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(ctx.source, key, f"expected {_describe(tp)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ConfigError(ctx.source, key, f"expected {_describe(tp)}, got {value!r}")
        item = typing.get_args(tp)[0]
        items = [_convert(v, item, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(ctx.source, key, f"expected a table, got {value!r}")
        return {str(k): _convert(v, typing.get_args(tp)[1], f"{key}.{k}", ctx) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(ctx.source, key, f"expected a table, got {value!r}")
        return _build(tp, value, key, ctx)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(ctx.source, key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(ctx.source, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(ctx.source, key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(ctx.source, key, f"expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(ctx.source, key, f"expected a path string, got {value!r}")
        path = Path(os.path.expandvars(os.path.expanduser(value)))
        return path if path.is_absolute() else ctx.base_dir / path
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug in this module, not in the file


@dataclass
class _Context:
    source: str
    base_dir: Path


def _build(cls, table: dict, prefix: str, ctx: _Context, **given):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - set(given)
    unknown = sorted(set(table) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(ctx.source, where, f"unknown key (allowed here: {', '.join(sorted(names))})")
    values = dict(given)
    for name, value in table.items():
        values[name] = _convert(value, hints[name], f"{prefix}.{name}" if prefix else name, ctx)
    return cls(**values)


def _validate_profile(profile: Profile, source: str) -> None:
    key = f"profiles.{profile.name}"
    if not profile.scales:
        raise ConfigError(source, f"{key}.scales", "must list at least one scale")
    for scale in profile.scales:
        if scale not in (2, 3, 4):
            raise ConfigError(source, f"{key}.scales", f"scale {scale} not supported (use 2, 3 or 4)")
    data = profile.dataset
    if data.kind != "demo" and data.root is None:
        raise ConfigError(source, f"{key}.dataset.root", f"required for dataset kind {data.kind!r}")
    positive = {
        "dataset.num_scenes": data.num_scenes, "dataset.hr_size": data.hr_size,
        "runtime.batch_size": profile.runtime.batch_size, "runtime.workers": profile.runtime.workers,
        "demo_training.steps": profile.demo_training.steps,
        "demo_training.patch_size": profile.demo_training.patch_size,
        "demo_training.batch_size": profile.demo_training.batch_size,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(source, f"{key}.{name}", f"must be positive, got {value}")
    if data.hr_size % 4:
        raise ConfigError(source, f"{key}.dataset.hr_size", f"must be a multiple of 4, got {data.hr_size}")
    if data.kind == "demo":
        bad = [scale for scale in profile.scales if data.hr_size % scale]
        if data.hr_size < 48 or bad:
            raise ConfigError(source, f"{key}.dataset.hr_size", f"the demo's HR size must be at least 48 and a "
                              f"multiple of every scale {list(profile.scales)}, got {data.hr_size}")
    for name, value in (("dataset.seed", data.seed), ("demo_training.seed", profile.demo_training.seed)):
        if value < 0:
            raise ConfigError(source, f"{key}.{name}", f"must be a non-negative integer, got {value}")
    if data.kind != "sice" and (data.parts is not None or data.label_dir is not None or data.hr_long_side is not None):
        given = next(k for k in ("parts", "label_dir", "hr_long_side") if getattr(data, k) is not None)
        raise ConfigError(source, f"{key}.dataset.{given}", f"only for dataset kind 'sice', not {data.kind!r}")
    if data.parts is not None and (not data.parts or data.label_dir is not None):
        raise ConfigError(source, f"{key}.dataset.parts", "must name at least one part folder, and each part has its "
                          "own Label folder (label_dir is for the one-part layout)")
    if data.hr_long_side is not None and data.hr_long_side < 64:
        raise ConfigError(source, f"{key}.dataset.hr_long_side", f"must be at least 64, got {data.hr_long_side}")
    if profile.runtime.tile_size < 0 or profile.runtime.tile_overlap < 0:
        raise ConfigError(source, f"{key}.runtime", "tile_size and tile_overlap must be >= 0")
    if profile.runtime.cpus_per_task < 0:
        raise ConfigError(source, f"{key}.runtime.cpus_per_task", f"must be >= 0, got {profile.runtime.cpus_per_task}")
    if not 0 <= profile.runtime.gpus_per_task <= 64:
        raise ConfigError(source, f"{key}.runtime.gpus_per_task",
                          f"must be between 0 and 64 (a fraction shares a GPU), got {profile.runtime.gpus_per_task}")


def parse_config(table: dict, source: str = "<config>", base_dir: Path | None = None) -> BenchmarkConfig:
    """Validate a parsed TOML table; relative paths resolve against `base_dir`."""
    ctx = _Context(source, base_dir or Path.cwd())
    unknown = sorted(set(table) - {"default_profile", "profiles", "methods"})
    if unknown:
        raise ConfigError(source, unknown[0], "unknown key (allowed at top level: default_profile, profiles, methods)")
    methods = _convert(table.get("methods", {}), dict[str, MethodDeclaration], "methods", ctx)
    for name, declared in methods.items():
        _validate_declaration(name, declared, source)
    raw_profiles = table.get("profiles", {"demo": {}})
    if not isinstance(raw_profiles, dict) or not raw_profiles:
        raise ConfigError(source, "profiles", "expected at least one [profiles.<name>] table")
    profiles = {}
    for name, body in raw_profiles.items():
        if not isinstance(body, dict):
            raise ConfigError(source, f"profiles.{name}", "expected a table")
        profile = _build(Profile, body, f"profiles.{name}", ctx, name=name)
        _validate_profile(profile, source)
        profile = _resolve_shipped_split(profile, source)
        profile = dataclasses.replace(profile, weights={**declared_weights(methods, profile.scales), **profile.weights})
        profiles[name] = profile
    default = table.get("default_profile", "demo")
    if not isinstance(default, str) or default not in profiles:
        raise ConfigError(source, "default_profile", f"{default!r} is not a defined profile ({', '.join(sorted(profiles))})")
    return BenchmarkConfig(source=source, default_profile=default, profiles=profiles, methods=methods)


def _resolve_shipped_split(profile: Profile, source: str) -> Profile:
    """`dataset.split = "NAME"` becomes `dataset.split_file` = the shipped file (both at once is an error)."""
    data = profile.dataset
    if data.split is None:
        return profile
    from cfanet.data.splits import SHIPPED_SPLITS, shipped_split

    key = f"profiles.{profile.name}.dataset"
    if data.split_file is not None:
        raise ConfigError(source, f"{key}.split", "give split (a shipped split) or split_file (your own), not both")
    if data.split not in SHIPPED_SPLITS:
        raise ConfigError(source, f"{key}.split", f"no shipped split {data.split!r} (known: {', '.join(SHIPPED_SPLITS)})")
    return dataclasses.replace(profile, dataset=dataclasses.replace(data, split_file=shipped_split(data.split)))


def _validate_declaration(name: str, declared: MethodDeclaration, source: str) -> None:
    key = f"methods.{name}"
    module, _, attribute = declared.target.partition(":")
    if not module or not attribute or not all(part.isidentifier() for part in module.split(".") + attribute.split(".")):
        raise ConfigError(source, f"{key}.target", f"expected \"package.module:Class\", got {declared.target!r}")
    if not name.strip() or any(c in name for c in "+/\\|"):
        raise ConfigError(source, key, "a method name must be non-empty without '+', '/', '\\' or '|'")
    if isinstance(declared.weights, dict):
        for scale_key in declared.weights:
            if scale_key not in ("x2", "x3", "x4"):
                raise ConfigError(source, f"{key}.weights.{scale_key}", "expected x2, x3 or x4")


def declared_weights(methods: dict[str, MethodDeclaration], scales: tuple[int, ...]) -> dict[str, Path]:
    """`[methods.NAME].weights` as `[profiles.*.weights]` keys: `NAME` for one path, `NAME.xS` per scale."""
    keys: dict[str, Path] = {}
    for name, declared in methods.items():
        if isinstance(declared.weights, dict):
            keys.update({f"{name}.{scale_key}": path for scale_key, path in declared.weights.items()})
        elif declared.weights is not None:
            keys[name] = declared.weights
            keys.update({f"{name}.x{s}": declared.weights for s in scales})
    return keys


def load_config(path: str | os.PathLike) -> BenchmarkConfig:
    """Read and validate a `benchmark.toml`; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot be read ({exc})") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"not valid TOML ({exc})") from None
    return parse_config(table, source=str(path), base_dir=path.resolve().parent)


def default_config() -> BenchmarkConfig:
    """The built-in configuration (one `demo` profile with every default) for use without a file."""
    return parse_config({"profiles": {"demo": {}}}, source="<built-in defaults>")


def find_config(explicit: str | os.PathLike | None = None) -> BenchmarkConfig:
    """`explicit`, else $CFANET_BENCH_CONFIG, else ./benchmark.toml, else the built-in defaults."""
    if explicit:
        return load_config(explicit)
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return load_config(env)
    local = Path.cwd() / CONFIG_FILE_NAME
    if local.is_file():
        return load_config(local)
    return default_config()
