"""The adapter base every deep method shares (SR models, MEF networks, joint networks).

A deep method wraps an `nn.Module` (`self.network`) behind the harness convention (float32 RGB
[0, 1] in and out). What does not depend on the method lives here, once: seeded creation from a
named configuration, the runtime options (device, tile side and overlap, autocast precision,
channels-last memory format, inference protocol), the automatic tile size, the autocast context
and the parameter count. Each subclass keeps what is its own: building its network, reading its
checkpoints strictly, and its official inference protocol (`cfanet.protocols`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from cfanet.protocols import EXACT, OFFICIAL, check_protocol
from cfanet.tiling import tile_size_for

AUTOCAST_DTYPES: Mapping[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeepMethod:
    """Runtime state shared by deep methods. Subclasses call `_setup(network, ...)` in `__init__`.

    Runtime options: `device`; `tile` (input pixels per tile side; 0 = automatic: whole image on the
    CPU, from free memory on CUDA; -1 = never tile), `tile_overlap` (None: the class's
    `default_tile_overlap`); `precision` ("fp32" or one of the class's `autocast_dtypes`);
    `channels_last` (memory format of the network's weights and inputs, for CUDA); `protocol`
    ("exact", or "official" for classes that list it in `protocols`: the release script's
    inference, bit for bit, which runs in fp32 in the standard memory format and tiles only as the
    script does, so `tile` is then -1 unless the class sets `official_tiles`).
    """

    name: ClassVar[str]
    configs: ClassVar[Mapping[str, Mapping]] = {}
    # Inference autocast dtypes that change PSNR by < 0.05 dB on the demo scenes (tests/test_autocast.py).
    autocast_dtypes: ClassVar[tuple[str, ...]] = ()
    # Peak activation memory per input pixel in fp32 (bytes), for the automatic tile size.
    bytes_per_input_pixel: ClassVar[float] = 100_000.0
    # Input pixels neighbouring tiles share; each tiling method sets what its tests show is seam-free.
    default_tile_overlap: ClassVar[int] = 0
    # Inference protocols (cfanet.protocols): "exact" always; "official" where the class reproduces
    # its release script. `official_tiles`: the release script itself takes a tile option.
    protocols: ClassVar[tuple[str, ...]] = (EXACT,)
    official_tiles: ClassVar[bool] = False

    network: nn.Module
    device: torch.device
    tile: int
    tile_overlap: int
    precision: str
    channels_last: bool
    protocol: str

    def _setup(self, network: nn.Module, *, device: str | torch.device = "cpu", tile: int = 0,
               tile_overlap: int | None = None, precision: str = "fp32", channels_last: bool = False,
               protocol: str = EXACT) -> None:
        """Check and store the runtime options; put the network on its device in eval mode."""
        check_protocol(protocol, self.protocols, self.name)
        if protocol == OFFICIAL and precision != "fp32":
            raise ValueError(f"{self.name}: the official protocol runs in fp32, got precision {precision!r}")
        if precision != "fp32" and precision not in self.autocast_dtypes:
            known = ", ".join(("fp32",) + tuple(self.autocast_dtypes))
            raise ValueError(f"{self.name}: precision must be one of {known}, got {precision!r}")
        if not isinstance(tile, int) or isinstance(tile, bool) or tile < -1:
            raise ValueError(f"{self.name}: tile must be an integer >= -1 (0: automatic, -1: never), got {tile!r}")
        overlap = self.default_tile_overlap if tile_overlap is None else tile_overlap
        if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
            raise ValueError(f"{self.name}: tile_overlap must be an integer >= 0, got {overlap!r}")
        self.device = torch.device(device)
        self.network = network.eval().to(self.device)
        self.protocol = protocol
        if protocol == OFFICIAL and (tile == 0 or not self.official_tiles):
            tile = -1   # the release scripts run the whole image unless told to tile; no automatic tiles
        self.tile, self.tile_overlap, self.precision = tile, overlap, precision
        self.channels_last = False
        if channels_last:
            self.use_channels_last()

    @classmethod
    def check_size(cls, size: str) -> Mapping:
        """The configuration called `size`; an unknown one is a ValueError listing the known ones."""
        if size not in cls.configs:
            raise ValueError(f"{cls.name}: unknown configuration {size!r}; known: {', '.join(cls.configs)}")
        return cls.configs[size]

    @staticmethod
    def seed(seed: int | None) -> None:
        """Seed torch's generator for a reproducible random initialisation (None: leave it)."""
        if seed is not None:
            torch.manual_seed(seed)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def use_channels_last(self) -> None:
        """Channels-last weights (and, where the method converts its inputs, inputs): faster
        convolutions on CUDA tensor cores; values are unchanged. Not under the official protocol,
        whose scripts use the standard format."""
        if self.protocol == OFFICIAL:
            return
        self.network = self.network.to(memory_format=torch.channels_last)
        self.channels_last = True

    def _tile_size(self, x: torch.Tensor) -> int:
        """Tile side for input `x` (N, C, H, W): the configured tile, or the automatic one."""
        factor = 1.0 if self.precision == "fp32" else 0.5
        return tile_size_for(self.tile, self.device, self.bytes_per_input_pixel * factor * x.shape[0],
                             tuple(x.shape[-2:]))

    def _autocast(self):
        """Autocast to the configured precision on the method's device (nothing for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=AUTOCAST_DTYPES[self.precision])
