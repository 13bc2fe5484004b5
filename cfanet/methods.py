"""The method interface: one descriptor per method, declared next to the model's own code.

A method's class carries a `MethodSpec` (set by the `register_method` decorator, in the spirit of
timm's `register_model` and spandrel's architecture descriptors): its name, its kind, whether its
weights depend on the scale, whether it can be trained here, whether it tiles, the smallest input
it accepts, its autocast dtypes and configurations (read from the class), how it is created and how
its weights are loaded. Everything else (the grid of compared pipelines, `apply`, `train`, `list`,
the runner and its executors, the benchmarks and the tests) reads these descriptors through
`pipelines.registry`, which also finds methods of other packages (entry points) and of
`benchmark.toml`.

Kinds and their call (float32 RGB (N, 3, H, W) in [0, 1] in and out):

- `sr`: `upscale(lr)`;
- `mef`: `fuse(over, under)` on a same-size pair;
- `joint`: `fuse_upscale(over, under)` on an LR pair.

This module imports no model: the foundation (CFANet) and the baselines both register here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Kind = Literal["sr", "mef", "joint"]
KINDS: tuple[str, ...] = ("sr", "mef", "joint")
CALLS: Mapping[str, str] = {"sr": "upscale", "mef": "fuse", "joint": "fuse_upscale"}


class MethodError(ValueError):
    """A method descriptor or plugin that cannot be used; the message names it."""


@dataclass(frozen=True)
class MethodSpec:
    """What the harness knows of a method. Built by `register_method`; plugins may build one too.

    - `deep`: loads weights (a checkpoint file); classical methods need none;
    - `scale_specific`: one weights file per scale (`NAME.xS` keys) and a `scale` argument to
      `create`/`from_checkpoint`; scale-free methods use the key `NAME`;
    - `trainable`: `cfanet-bench train` can train it here (else `not_trainable` says why);
    - `tiles`: accepts `tile` and `tile_overlap` (tiled output within `tile_tolerance` of the
      untiled one on [0, 1], as its tests show);
    - `min_input_size`: the smallest input side (pixels) it accepts;
    - `paper_order`: position in the paper's comparison within its kind (None: not in the paper);
      the default grid is the paper's methods in that order;
    - `proposed`: the paper's proposed method, which the reports' statistics compare every other
      method against.
    """

    name: str
    kind: Kind
    cls: type
    deep: bool = True
    scale_specific: bool = True
    trainable: bool = True
    not_trainable: str = ""
    tiles: bool = False
    tile_tolerance: float = 0.0
    min_input_size: int = 1
    paper_order: int | None = None
    proposed: bool = False
    source: str = "built-in"
    note: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise MethodError(f"method {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.name, str) or not self.name.strip() or any(c in self.name for c in "+/\\|\x00"):
            raise MethodError(f"method name {self.name!r}: must be non-empty without '+', '/', '\\' or '|'")
        call = CALLS[self.kind]
        if not callable(getattr(self.cls, call, None)):
            raise MethodError(f"method {self.name!r} ({self.kind}): its class {self.cls.__qualname__} has no "
                              f"`{call}` method")
        if self.deep and not (callable(getattr(self.cls, "from_checkpoint", None))
                              and callable(getattr(self.cls, "create", None))):
            raise MethodError(f"method {self.name!r}: a deep method's class needs `create` and `from_checkpoint`")

    # -- what the class declares ------------------------------------------------------------------

    @property
    def module(self) -> str:
        return self.cls.__module__

    @property
    def target(self) -> str:
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    @property
    def autocast_dtypes(self) -> tuple[str, ...]:
        return tuple(getattr(self.cls, "autocast_dtypes", ()))

    @property
    def configs(self) -> Mapping[str, Mapping]:
        return getattr(self.cls, "configs", {})

    @property
    def protocols(self) -> tuple[str, ...]:
        """The inference protocols the class has (`cfanet.protocols`): "exact", and "official" where
        it reproduces its release script."""
        return tuple(getattr(self.cls, "protocols", ("exact",)))

    def protocol_for(self, requested: str) -> str:
        """The protocol this method runs under when `requested` is asked for: "official" only where
        the class has it; a method without one runs "exact"."""
        return "official" if requested == "official" and "official" in self.protocols else "exact"

    @property
    def call(self) -> str:
        return CALLS[self.kind]

    def weight_keys(self, scales: tuple[int, ...]) -> list[str]:
        """Keys of `[profiles.*.weights]` this method reads: `NAME.xS` when scale-specific, else `NAME`."""
        if not self.deep:
            return []
        return [f"{self.name}.x{s}" for s in scales] if self.scale_specific else [self.name]

    def runtime_options(self, tile: int = 0, tile_overlap: int | None = None,
                        precision: str = "fp32", protocol: str = "exact") -> dict[str, Any]:
        """The runtime options this method accepts, from the profile's settings: tiling for methods
        that tile, a precision for methods that list autocast dtypes. Under the official protocol
        (where the class has it): `protocol="official"`, fp32, and tiling only for classes whose
        release script takes a tile option (`official_tiles`). The exact protocol adds no option, so
        its options (and the stage cache keys made from them) are those of before protocols existed."""
        options: dict[str, Any] = {}
        if self.protocol_for(protocol) == "official":
            options["protocol"] = "official"
            if self.tiles and getattr(self.cls, "official_tiles", False):
                options["tile"] = tile
                if tile_overlap:
                    options["tile_overlap"] = tile_overlap
            return options
        if self.tiles:
            options["tile"] = tile
            if tile_overlap:
                options["tile_overlap"] = tile_overlap
        if precision != "fp32" and precision in self.autocast_dtypes:
            options["precision"] = precision
        return options

    # -- construction -----------------------------------------------------------------------------

    def create(self, scale: int, size: str = "official", seed: int | None = 0, **runtime):
        """An instance: a deep method in configuration `size` with seeded random weights; a classical
        method with its defaults (and the scale, when its constructor takes one)."""
        if not self.deep:
            return self._classical(scale)
        if self.scale_specific:
            return self.cls.create(scale, size, seed=seed, **runtime)
        return self.cls.create(size, seed=seed, **runtime)

    def load(self, path: str | Path, scale: int | None = None, size: str | None = None, **runtime):
        """An instance with the weights at `path`, loaded strictly (the class's `from_checkpoint`);
        the scale is passed to scale-specific methods only (None: read from the weights), the
        configuration name `size` to classes whose loader takes one (others read it from the weights)."""
        if not self.deep:
            return self._classical(scale)
        if size is not None and "size" in inspect.signature(self.cls.from_checkpoint).parameters:
            runtime["size"] = size
        if self.scale_specific:
            return self.cls.from_checkpoint(path, scale=scale, **runtime)
        return self.cls.from_checkpoint(path, **runtime)

    def _classical(self, scale: int | None):
        takes_scale = "scale" in inspect.signature(self.cls).parameters
        return self.cls(scale=scale) if takes_scale and scale is not None else self.cls()

    def with_source(self, source: str, name: str | None = None) -> "MethodSpec":
        return replace(self, source=source, name=name or self.name)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (for `list --json` and manifests)."""
        return {"name": self.name, "kind": self.kind, "target": self.target, "deep": self.deep,
                "scale_specific": self.scale_specific, "trainable": self.trainable, "tiles": self.tiles,
                "min_input_size": self.min_input_size, "autocast_dtypes": list(self.autocast_dtypes),
                "configs": sorted(self.configs), "protocols": list(self.protocols),
                "paper_order": self.paper_order, "proposed": self.proposed,
                "source": self.source,
                "note": self.note or self.not_trainable}


def register_method(kind: Kind, *, name: str | None = None, **fields_):
    """Class decorator: attach a `MethodSpec` to the class as `cls.method_spec`. `name` defaults to
    the class's `name` attribute; the other fields are `MethodSpec`'s.

        @register_method("sr", tiles=True, tile_tolerance=5e-5, paper_order=2)
        class RCAN(SuperResolver): ...
    """

    def decorate(cls: type) -> type:
        spec_name = name or getattr(cls, "name", None) or cls.__name__
        cls.method_spec = MethodSpec(spec_name, kind, cls, **fields_)
        return cls

    return decorate


def spec_of(obj: Any, *, source: str = "") -> MethodSpec:
    """The `MethodSpec` an object declares: a class (or object) with `method_spec`, or a spec."""
    if isinstance(obj, MethodSpec):
        return obj
    spec = getattr(obj, "method_spec", None)
    if isinstance(spec, MethodSpec):
        return spec
    what = obj.__qualname__ if inspect.isclass(obj) else type(obj).__name__
    raise MethodError(f"{source or what}: not a method: decorate its class with "
                      f"cfanet.methods.register_method(kind, ...) or point at a MethodSpec")


@dataclass
class MethodTable:
    """Methods by name (case-insensitive look-up), in registration order."""

    specs: dict[str, MethodSpec] = field(default_factory=dict)

    def add(self, spec: MethodSpec) -> None:
        clash = self.find(spec.name)
        if clash is not None and clash.cls is not spec.cls:
            raise MethodError(f"method {spec.name!r} from {spec.source} ({spec.target}) clashes with the one "
                              f"from {clash.source} ({clash.target}); rename one")
        self.specs.setdefault(clash.name if clash else spec.name, spec)

    def find(self, name: str) -> MethodSpec | None:
        lowered = name.lower()
        return next((s for key, s in self.specs.items() if key.lower() == lowered), None)

    def of_kind(self, kind: str) -> list[MethodSpec]:
        return [s for s in self.specs.values() if s.kind == kind]
