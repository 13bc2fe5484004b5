"""The one registry of methods: built-in, from installed packages, and from `benchmark.toml`.

Every method is a class carrying a `cfanet.methods.MethodSpec` (its `register_method` decorator).
They are found in three places, and everything that needs methods (the grid of compared pipelines,
`apply`, `train`, `list`, `doctor`, the runner and its executors, the benchmarks, the tests) asks
this module:

- **built-in**: every module of the packages in `BUILTIN_PACKAGES` is imported once and its
  decorated classes registered; a new model file in `baselines/sr/` is found without any list
  being edited;
- **entry points** of the group `cfanet_bench.methods` in installed distributions
  (`[project.entry-points."cfanet_bench.methods"] MyNet = "my_pkg.model:MyNet"`): the object may be
  a decorated class, a `MethodSpec`, or a module whose decorated classes all register;
- **`benchmark.toml`**: `[methods.NAME] target = "package.module:Class"` (plus `kind` when the
  class is not decorated, and its weights).

A broken plugin is an error naming it, when it is used; it never breaks the built-in methods.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cfanet.methods import KINDS, MethodError, MethodSpec, MethodTable, spec_of
from pipelines.config import BenchmarkConfig, ConfigError, MethodDeclaration, Profile, declared_weights

ENTRY_POINT_GROUP = "cfanet_bench.methods"
# Packages (walked recursively) and modules whose decorated classes are the built-in methods.
BUILTIN_PACKAGES = ("baselines", "cfanet.network")


def _specs_in_module(module) -> list[MethodSpec]:
    """The methods a module defines (not those it imports from elsewhere)."""
    return [obj.method_spec for obj in vars(module).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__
            and isinstance(getattr(obj, "method_spec", None), MethodSpec) and obj.method_spec.cls is obj]


def _modules_of(name: str) -> list[str]:
    module = importlib.import_module(name)
    names = [name]
    if hasattr(module, "__path__"):
        names += [info.name for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}.")]
    return names


def _order(spec: MethodSpec) -> tuple:
    return (KINDS.index(spec.kind), spec.paper_order is None, spec.paper_order or 0, spec.name.lower())


@lru_cache(maxsize=1)
def builtin_methods() -> tuple[MethodSpec, ...]:
    """The package's own methods, kinds in order SR, MEF, joint, the paper's first (in its order)."""
    specs = []
    for package in BUILTIN_PACKAGES:
        for module_name in _modules_of(package):
            specs += _specs_in_module(importlib.import_module(module_name))
    return tuple(sorted(specs, key=_order))


def _load_entry_point(entry) -> list[MethodSpec]:
    where = f"entry point {entry.name!r} = {entry.value!r} ({ENTRY_POINT_GROUP}"
    where += f", distribution {entry.dist.name})" if getattr(entry, "dist", None) else ")"
    try:
        obj = entry.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is reported, naming it
        raise MethodError(f"{where}: cannot be imported: {type(exc).__name__}: {exc}") from exc
    if inspect.ismodule(obj):
        specs = _specs_in_module(obj)
        if not specs:
            raise MethodError(f"{where}: the module defines no class decorated with register_method")
        return [spec.with_source(f"entry point {entry.name}") for spec in specs]
    spec = spec_of(obj, source=where)
    return [spec.with_source(f"entry point {entry.name}")]


@lru_cache(maxsize=1)
def plugin_methods() -> tuple[MethodSpec, ...]:
    """Methods of installed distributions, through the `cfanet_bench.methods` entry points."""
    specs: list[MethodSpec] = []
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        specs += _load_entry_point(entry)
    return tuple(specs)


def declared_method(name: str, declared: MethodDeclaration, source: str) -> MethodSpec:
    """The method `[methods.NAME]` of a configuration file declares."""
    key = f"methods.{name}.target"
    module_name, _, attribute = declared.target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - reported as a config error naming the key
        raise ConfigError(source, key, f"cannot import {declared.target!r}: {type(exc).__name__}: {exc}") from exc
    given = {field: getattr(declared, field) for field in ("deep", "scale_specific") if getattr(declared, field) is not None}
    if declared.note:
        given["note"] = declared.note
    try:
        spec = getattr(obj, "method_spec", None) if inspect.isclass(obj) else None
        if isinstance(spec, MethodSpec):
            from dataclasses import replace

            if declared.kind is not None and declared.kind != spec.kind:
                raise MethodError(f"kind {declared.kind!r} given, but {declared.target} declares {spec.kind!r}")
            # another name for a built-in class (a trained variant: `[methods."CFANet-raw"]`) is not the
            # paper's method: it joins a grid only where the profile lists it, as an extra row
            return replace(spec, name=name, source=source, paper_order=None, proposed=False, **given)
        if isinstance(obj, MethodSpec):
            return obj.with_source(source, name=name)
        if declared.kind is None:
            raise MethodError(f"{declared.target} carries no register_method descriptor: give its kind "
                              f"(kind = \"sr\", \"mef\" or \"joint\")")
        given.setdefault("deep", False)
        return MethodSpec(name, declared.kind, obj, source=source, **given)
    except MethodError as exc:
        raise ConfigError(source, f"methods.{name}", str(exc)) from exc


def methods(config: BenchmarkConfig | None = None) -> MethodTable:
    """Every method: built-in, then plugins, then those `config` declares; names are unique
    (case-insensitive) and a clash is an error naming both sources."""
    table = MethodTable()
    for spec in builtin_methods() + plugin_methods():
        table.add(spec)
    if config is not None:
        for name, declared in config.methods.items():
            table.add(declared_method(name, declared, f"{config.source} [methods.{name}]"))
    return table


def method(name: str, config: BenchmarkConfig | None = None) -> MethodSpec:
    """The method called `name` (case-insensitive); an unknown name lists close matches."""
    table = methods(config)
    spec = table.find(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(table.specs), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(table.specs)}"
        raise KeyError(f"unknown method {name!r}{hint}")
    return spec


def check_weights_keys(config: BenchmarkConfig, profile: Profile, table: MethodTable) -> None:
    """Every key of `[profiles.<name>.weights]` must name a registered method's weights at one of the
    profile's scales (`NAME` for scale-free methods, `NAME.xS` otherwise): a typo would otherwise
    leave the method on demo weights without a word. The error names the key, the file and the
    closest valid keys."""
    valid = {key for spec in table.specs.values() for key in spec.weight_keys(profile.scales)}
    valid |= set(declared_weights(config.methods, profile.scales))
    for key in profile.weights:
        if key in valid:
            continue
        name, _, scale = key.rpartition(".x") if ".x" in key else (key, "", "")
        spec = table.find(name) if name else None
        if spec is not None and spec.deep and scale:
            problem = (f"{spec.name} is scale-free: use the key \"{spec.name}\"" if not spec.scale_specific else
                       f"scale x{scale} is not among the profile's scales {list(profile.scales)}")
        elif spec is not None and not spec.deep:
            problem = f"{spec.name} loads no weights"
        else:
            close = difflib.get_close_matches(key, sorted(valid), n=3, cutoff=0.6)
            problem = "no such method" + (f"; did you mean {', '.join(close)}?" if close else
                                          f"; valid keys: {', '.join(sorted(valid))}")
        raise ConfigError(config.source, f"profiles.{profile.name}.weights.\"{key}\"", f"unknown key: {problem}")


def check_protocols(config: BenchmarkConfig, profile: Profile, table: MethodTable) -> None:
    """Every key of `[profiles.<name>.runtime.protocols]` must name a registered method, and a method
    set to "official" must have that protocol: the error names the key and the file."""
    for name, protocol in profile.runtime.protocols.items():
        key = f"profiles.{profile.name}.runtime.protocols.\"{name}\""
        spec = table.find(name)
        if spec is None:
            close = difflib.get_close_matches(name, sorted(table.specs), n=3, cutoff=0.6)
            raise ConfigError(config.source, key, "no such method" + (f"; did you mean {', '.join(close)}?" if close
                                                                      else f"; methods: {', '.join(table.specs)}"))
        if protocol not in spec.protocols:
            raise ConfigError(config.source, key, f"{spec.name} has no {protocol!r} protocol (it has: "
                              f"{', '.join(spec.protocols)})")


@dataclass(frozen=True)
class WeightsStatus:
    """Where a deep method's weights for one scale come from."""

    method: str
    key: str
    path: Path | None
    found: bool
    source: Literal["configured", "demo", "none"]


def weights_status(profile: Profile, spec: MethodSpec, scale: int) -> WeightsStatus | None:
    """Configured file (and whether it exists), else demo weights for a small-model profile when the
    method is trainable here or has a small configuration; None for methods without weights."""
    if not spec.deep:
        return None
    key = spec.weight_keys((scale,))[0]
    path = profile.weights.get(key)
    if path is not None:
        # a file, or a TensorFlow checkpoint prefix (`model.ckpt` with `model.ckpt.index` beside it);
        # any other sibling (`RCAN.pth.bak`) does not make a missing file found
        found = Path(path).is_file() or Path(f"{path}.index").is_file()
        return WeightsStatus(spec.name, key, Path(path), found, "configured")
    if profile.model_size == "small" and "small" in spec.configs:
        return WeightsStatus(spec.name, key, None, True, "demo")
    return WeightsStatus(spec.name, key, None, False, "none")
