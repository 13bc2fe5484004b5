"""The SR adapter every super-resolution model shares.

A model file defines the network with the official parameter names, its configurations as data
(`configs`: "official" and "small") and one adapter subclass that implements the official
inference protocol in `forward_protocol` (value range, mean shift, padding, colour order). This
base class adds what is common: checkpoint loading with strict checks (the scale inferred from
the weights where the file says it), the harness boundary (float32 RGB [0, 1] in and out),
tiling, self-ensemble, device placement, precision and the parameter count, and the official
protocol's frame (`cfanet.protocols`): a model that lists "official" in `protocols` runs
`forward_official` (its release script's forward: chopping, tiling) one image at a time and
quantises the result as the script does (half to even, on its `native_range`).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from cfanet.adapter import DeepMethod
from cfanet.checkpoint import CheckpointError, check_state_dict, read_checkpoint, unwrap_state_dict
from cfanet.ensemble import self_ensemble
from cfanet.protocols import OFFICIAL, as_unit, levels_half_even, one_at_a_time
from cfanet.tiling import tiled_apply


class SuperResolver(DeepMethod, abc.ABC):
    """An SR network behind the harness convention: `upscale(lr)` takes and returns float32 RGB [0, 1].

    Runtime options: `device`; `tile` (input pixels per tile side; 0 = whole image on CPU and
    chosen from free memory on CUDA; -1 = never tile); `tile_overlap`; `self_ensemble` (x8);
    `precision` ("fp32", or "bf16"/"fp16" autocast for models that list it in `autocast_dtypes`);
    `protocol` ("exact", or "official" for models that list it in `protocols`).
    """

    name: ClassVar[str]
    configs: ClassVar[Mapping[str, Mapping]]
    supports_bf16: ClassVar[bool] = True  # training in bf16
    # Inference autocast dtypes that change PSNR by < 0.05 dB on the demo scenes (tests/test_autocast.py).
    autocast_dtypes: ClassVar[tuple[str, ...]] = ("bf16", "fp16")
    # Peak activation memory per input pixel in fp32 (bytes), for the automatic tile size.
    bytes_per_input_pixel: ClassVar[float] = 400_000.0
    # True for models with global operations (e.g. channel attention over the whole image) that tile
    # their features exactly inside `forward_protocol` instead of tiling the image.
    tiles_features: ClassVar[bool] = False
    # Input pixels neighbouring tiles share; each model sets what its tests show is seam-free.
    default_tile_overlap: ClassVar[int] = 16
    # Buffers that official checkpoints may lack or carry but that the computation derives itself.
    ignored_keys: ClassVar[tuple[str, ...]] = ()
    # The value range of the network's input and output in the release script (RCAN and SRFBN work
    # on [0, 255]): the official protocol quantises there, as the script does.
    native_range: ClassVar[float] = 1.0

    def __init__(self, network: nn.Module, scale: int, *, device: str | torch.device = "cpu", tile: int = 0,
                 tile_overlap: int | None = None, self_ensemble: bool = False, precision: str = "fp32",
                 channels_last: bool = False, protocol: str = "exact", weights: str = "random init"):
        if protocol == OFFICIAL and self_ensemble:
            raise ValueError(f"{self.name}: the official protocol is the release script's plain test, without "
                             f"self-ensemble")
        self._setup(network, device=device, tile=tile, tile_overlap=tile_overlap, precision=precision,
                    channels_last=channels_last, protocol=protocol)
        self.scale, self.use_self_ensemble, self.weights = scale, self_ensemble, weights

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def build_network(cls, scale: int, **config) -> nn.Module:
        """The network with the official parameter names for `scale` and a configuration."""

    @classmethod
    def infer_scale(cls, weights: Mapping[str, torch.Tensor]) -> int | None:
        """The scale a state dict was trained for, when its shapes tell; None otherwise."""
        return None

    @classmethod
    def create(cls, scale: int, size: str = "official", seed: int | None = 0, **runtime) -> "SuperResolver":
        """A model of configuration `size` ("official" or "small") with seeded random weights."""
        config = cls.check_size(size)
        cls.seed(seed)
        return cls(cls.build_network(scale, **config), scale, **runtime)

    @classmethod
    def from_checkpoint(cls, path: str | Path, scale: int | None = None, size: str = "official",
                        key: str | None = None, **runtime) -> "SuperResolver":
        """Load an official (or our own) checkpoint strictly; the scale comes from the weights if not given."""
        weights = unwrap_state_dict(read_checkpoint(path), key=key, source=str(path))
        inferred = cls.infer_scale(weights)
        if scale is None:
            if inferred is None:
                raise CheckpointError(f"{path}: cannot tell the scale of this {cls.name} checkpoint; pass scale")
            scale = inferred
        elif inferred is not None and inferred != scale:
            raise CheckpointError(f"{path}: this is an x{inferred} {cls.name} checkpoint, but x{scale} was asked for")
        network = cls.build_network(scale, **cls.configs[size])
        check_state_dict(network.state_dict(), weights, source=str(path), ignore=cls.ignored_keys)
        kept = {k: v for k, v in weights.items() if k not in cls.ignored_keys}
        network.load_state_dict(kept, strict=not cls.ignored_keys)
        return cls(network, scale, weights=str(path), **runtime)

    # -- inference --------------------------------------------------------------------------------

    @abc.abstractmethod
    def forward_protocol(self, lr: torch.Tensor) -> torch.Tensor:
        """The official inference protocol on one batch: RGB [0, 1] (N, 3, H, W) on the model's
        device -> RGB on the [0, 1] scale (N, 3, scale*H, scale*W), before clamping."""

    def forward_official(self, lr: torch.Tensor) -> torch.Tensor:
        """The release script's forward on one image: RGB [0, 1] (1, 3, H, W) -> its output on
        `native_range` before quantisation. By default `forward_protocol` (whose tiling the
        official protocol switches off), for models whose script works on [0, 1]; the others override."""
        return self.forward_protocol(lr)

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        """float32 RGB (N, 3, H, W) in [0, 1] -> float32 RGB (N, 3, scale*H, scale*W) in [0, 1],
        on `lr`'s device. Tiling and self-ensemble as configured; under the official protocol the
        release script's forward, one image at a time, and its 8-bit levels / 255."""
        if not isinstance(lr, torch.Tensor) or lr.dim() != 4 or lr.shape[1] != 3 or not lr.is_floating_point():
            shape = tuple(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
            raise ValueError(f"{self.name}: expected a float RGB tensor (N, 3, H, W) in [0, 1], got {shape}")
        x = lr.to(self.device, torch.float32)
        if self.protocol == OFFICIAL:
            def official(image: torch.Tensor) -> torch.Tensor:
                return levels_half_even(self.forward_official(image).float(), self.native_range)

            return as_unit(one_at_a_time(official, x)).to(lr.device)
        tile = 0 if self.tiles_features else self._tile_size(x)

        def run(batch: torch.Tensor) -> torch.Tensor:
            with self._autocast():
                return self.forward_protocol(batch).float()

        def tiled(batch: torch.Tensor) -> torch.Tensor:
            return tiled_apply(run, batch, self.scale, tile, self.tile_overlap)

        out = self_ensemble(tiled, x) if self.use_self_ensemble else tiled(x)
        return out.clamp_(0.0, 1.0).to(lr.device)
