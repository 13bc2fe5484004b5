"""U2Fusion: a unified unsupervised image fusion network (Xu, Ma, Jiang, Guo, Ling, TPAMI 2020).

Re-implementation of the official TensorFlow 1.x code (hanna-xu/U2Fusion, `Net.py`, `model.py`,
`test_main.py`), with the official variable names mapped onto PyTorch parameters, so that the
released checkpoint `model/model.ckpt.{index,data-00000-of-00001,meta}` loads as it is (read
without TensorFlow by `baselines.mef.tf_checkpoint`).

The network (`Net.py`, `Generator`) fuses two single-channel images:

- every convolution is 3x3, stride 1, on a 1-pixel REFLECT padding ("VALID" convolution of the
  reflect-padded input), with a bias; LeakyReLU 0.2 (`tf.maximum(x, 0.2 x)`) except at the end;
- encoder (variable scope `Generator/encoder`): `conv1_1` maps the two sources, concatenated as
  [source1, source2], to n = 44 features; five `dense_block_conv{i}` each map everything so far
  to 44 new features and concatenate [new, input] (the new features first), up to 6 n = 264;
- decoder (`Generator_1/decoder`: the scope name is used twice in the graph): `conv2_1..conv2_4`,
  264 -> 128 -> 64 -> 32 -> 1, the last without activation, then `tanh(x) / 2 + 0.5`.
- 659,217 parameters (`num_parameters`), all in the checkpoint; TensorFlow stores kernels as
  (kh, kw, in, out) and PyTorch as (out, in, kh, kw).

Inference protocol. The official code fuses the Y channels and leaves colour to a separate MATLAB
script; MEFB's published `fused_U2Fusion` images (the outputs this adapter is calibrated on) come
from that chain, which is reproduced here step by step:

1. the exposures are 8-bit images (`quantize`, round half up), divided by 255;
2. Y = 0.3 R + 0.59 G + 0.11 B on [0, 1], float64, fed as float32 (`luma="ntsc"`). The
   official `test_main.py` of 2019 (fccadc0) reads gray images only, leaving RGB -> Y to the
   user; MEFB's images match these weights: on Candle, 99.997% of the pixels' 8-bit Y equal ours
   with them, 89% with 0.299 / 0.587 / 0.114 (the full-range luma of the `rgb2ycbcr` that
   `test_main.py` gained in May 2022, db88f84: `luma="bt601"`), and far fewer with BT.709 or an
   8-bit rounded Y;
3. SOURCE1 = the under-exposure, SOURCE2 = the over-exposure (`first="under"`). The network is
   not symmetric in its inputs; MEFB's Y matches this order (rms residual of a linear fit on
   Candle: 0.35 levels, the 8-bit rounding) and not the other (4 levels). The commented
   multi-exposure paths of the official `test_main.py` feed the over-exposure first
   (`first="over"`);
4. the fused Y (float32, in (0, 1)) is saved as an 8-bit image by `scipy.misc.imsave`, which
   stretches it to [0, 255] (`bytescale`: `(y - min) * 255 / (max - min)`, + 0.5, truncated):
   `y_scaling="minmax"`, every `test_main.py` from 2019 to 468a78a (November 2023). Since
   dc537f6 it saves with `toimage(cmin=0, cmax=max(y))` instead (`y_scaling="max"`); `"none"` is
   `round(255 y)`;
5. colour (`fusedY2RGB.m` of hanna-xu/utils, linked from the official README "for RGB input"):
   Cb and Cr of each exposure by MATLAB `rgb2ycbcr` on the uint8 image (rounded to uint8), each
   fused as `(x1 |x1 - 128| + x2 |x2 - 128|) / (|x1 - 128| + |x2 - 128|)` (128 where both are
   128), and RGB from the script's `YCbCr2rgb`: the BT.601 studio-swing inverse
   `[1.164 0 1.596; 1.164 -0.392 -0.813; 1.164 2.017 0] (Y - 16, Cb - 128, Cr - 128)`, applied
   to the stretched full-range 8-bit Y (as the official chain does), then MATLAB `uint8`
   (round half away from zero, saturate).

`U2Fusion.fuse` returns that 8-bit result divided by 255 (float32 RGB (N, 3, H, W), as the
harness expects); `fuse_luma` returns the network's raw fused Y. With the official weights the
network matches the official TensorFlow graph to 5.4e-7, and the whole chain reproduces MEFB's
published images: on 15 of its 16 scenes all but 1-22 pixels are identical (rounding ties, 1-2
levels; 89-102 dB PSNR); Sky, whose inputs are JPEG files, reaches 52 dB (tests/test_u2fusion.py
says why).

Sizes: the network is fully convolutional, so any H, W >= 2 works (REFLECT padding of 1 needs two
pixels, in TensorFlow too), odd sizes included; no padding or cropping is involved. Optional
tiling (`tile`, `tile_overlap`) runs the network on overlapping tiles; the receptive field reaches
10 pixels, so an overlap of at least 20 gives the untiled result (up to summation order) and the
global stretch of step 4 is applied to the assembled Y.

Training is not available: U2Fusion's loss weights each source by the information measured on
features of an ImageNet-pretrained VGG-16 (`VGGnet/vgg16.py`, weights `vgg16.npy` distributed
outside the repository via Baidu Pan), plus an elastic-weight-consolidation term over three tasks.
Those VGG-16 weights cannot be downloaded here, and a randomly initialised VGG would make a
different method, so `U2Fusion.training_loss` raises NotImplementedError rather than fake it. The
"small" configuration (demo profile) therefore runs with seeded random weights, same code path.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.mef.base import check_pair
from baselines.mef.tf_checkpoint import TFCheckpointReader, is_tf_checkpoint
from cfanet.adapter import DeepMethod
from cfanet.methods import register_method
from cfanet.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    check_state_dict,
    read_checkpoint,
    unwrap_state_dict,
)
from cfanet.tiling import tiled_apply

METHOD = "U2Fusion"

# `Net.py`: truncated-normal initialisation of the kernels (TF truncates at two standard deviations).
WEIGHT_INIT_STDDEV = 0.05
LEAKY_SLOPE = 0.2
RECEPTIVE_RADIUS_PER_CONV = 1

# Luma weights on [0, 1]: "ntsc", the rounded NTSC weights with which MEFB's published outputs
# were made (their Y matches to the 8-bit rounding with these and not with the others);
# "bt601", the full-range (JPEG) luma of `test_main.py`'s `rgb2ycbcr` (since May 2022).
LUMA_WEIGHTS = {"ntsc": (0.3, 0.59, 0.11), "bt601": (0.299, 0.587, 0.114)}
# `fusedY2RGB/YCbCr2rgb.m` (hanna-xu/utils): BT.601 studio-swing YCbCr -> RGB on [0, 255].
YCBCR2RGB_MATRIX = ((1.164, 0.0, 1.596), (1.164, -0.392, -0.813), (1.164, 2.017, 0.0))
# MATLAB `rgb2ycbcr` chroma rows (uint8 in, uint8 out), offsets on [0, 255].
CBCR_ROWS = ((128.0, (-37.797, -74.203, 112.0)), (128.0, (112.0, -93.786, -18.214)))

# TensorFlow variable scopes of the official graph (the decoder's name scope is opened a second
# time, so TensorFlow numbers it `Generator_1`).
TF_SCOPES = {"encoder": "Generator/encoder", "decoder": "Generator_1/decoder"}
TF_KINDS = {"weight": "kernel", "bias": "bias"}


# -- network ----------------------------------------------------------------------------------------

def reflect_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """`Net.conv2d`: REFLECT padding of 1, then a 3x3 VALID convolution with bias."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")


class DenseEncoder(nn.Module):
    """`Net.Encoder`: `conv1_1` (2 -> n), then `dense_layers` dense convolutions (k n -> n) that
    concatenate [new features, input]; LeakyReLU 0.2 everywhere. Output (N, (dense_layers+1) n, H, W)."""

    def __init__(self, features: int, dense_layers: int, in_channels: int = 2):
        super().__init__()
        self.layer_names = ["conv1_1"] + [f"dense_block_conv{i}" for i in range(1, dense_layers + 1)]
        self.add_module("conv1_1", reflect_conv(in_channels, features))
        for i in range(1, dense_layers + 1):
            self.add_module(f"dense_block_conv{i}", reflect_conv(i * features, features))
        self.out_channels = (dense_layers + 1) * features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1_1(x), LEAKY_SLOPE)
        for name in self.layer_names[1:]:
            x = torch.cat((F.leaky_relu(getattr(self, name)(x), LEAKY_SLOPE), x), dim=1)
        return x


class Decoder(nn.Module):
    """`Net.Decoder`: `conv2_1..conv2_k` with LeakyReLU 0.2, the last one to 1 channel followed by
    `tanh(x) / 2 + 0.5`."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        widths = (in_channels, *channels, 1)
        self.layer_names = [f"conv2_{i}" for i in range(1, len(widths))]
        for name, cin, cout in zip(self.layer_names, widths, widths[1:]):
            self.add_module(name, reflect_conv(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.layer_names[:-1]:
            x = F.leaky_relu(getattr(self, name)(x), LEAKY_SLOPE)
        return torch.tanh(getattr(self, self.layer_names[-1])(x)) / 2 + 0.5


class U2FusionNet(nn.Module):
    """The U2Fusion generator. `forward(source1, source2)`: two (N, 1, H, W) images in [0, 1]
    (H, W >= 2), or one (N, 2, H, W) tensor holding both -> the fused (N, 1, H, W) in (0, 1)."""

    def __init__(self, features: int = 44, dense_layers: int = 5, decoder_channels: tuple[int, ...] = (128, 64, 32)):
        super().__init__()
        self.encoder = DenseEncoder(features, dense_layers)
        self.decoder = Decoder(self.encoder.out_channels, tuple(decoder_channels))
        self.receptive_radius = RECEPTIVE_RADIUS_PER_CONV * (len(self.encoder.layer_names)
                                                             + len(self.decoder.layer_names))

    def forward(self, source1: torch.Tensor, source2: torch.Tensor | None = None) -> torch.Tensor:
        x = source1 if source2 is None else torch.cat((source1, source2), dim=1)
        return self.decoder(self.encoder(x))


def init_official_weights(network: nn.Module) -> nn.Module:
    """`Net.py`'s initialisation: kernels ~ truncated normal (std 0.05, cut at 2 std), zero biases."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.trunc_normal_(module.weight, std=WEIGHT_INIT_STDDEV,
                                  a=-2 * WEIGHT_INIT_STDDEV, b=2 * WEIGHT_INIT_STDDEV)
            nn.init.zeros_(module.bias)
    return network


def config_from_state_dict(weights: Mapping[str, torch.Tensor]) -> dict | None:
    """The configuration (features, dense_layers, decoder_channels) a state dict was made with,
    read from its shapes; None when the U2Fusion entries needed to tell are absent."""
    first = weights.get("encoder.conv1_1.weight")
    if first is None or first.dim() != 4:
        return None
    dense = 0
    while f"encoder.dense_block_conv{dense + 1}.weight" in weights:
        dense += 1
    decoder = []
    while f"decoder.conv2_{len(decoder) + 1}.weight" in weights:
        weight = weights[f"decoder.conv2_{len(decoder) + 1}.weight"]
        if weight.dim() != 4:
            return None
        decoder.append(int(weight.shape[0]))
    if not decoder:
        return None
    return {"features": int(first.shape[0]), "dense_layers": dense, "decoder_channels": tuple(decoder[:-1])}


# -- TensorFlow names -------------------------------------------------------------------------------

def tf_variable_name(key: str) -> str:
    """Our state-dict key -> the official TensorFlow variable name
    (`encoder.conv1_1.weight` -> `Generator/encoder/conv1_1/kernel`)."""
    module, layer, kind = key.split(".")
    return f"{TF_SCOPES[module]}/{layer}/{TF_KINDS[kind]}"


_TF_NAME = re.compile(r"^(Generator/encoder|Generator_1/decoder)/([A-Za-z0-9_]+)/(kernel|bias)$")


def state_key(tf_name: str) -> str | None:
    """The official TensorFlow variable name -> our state-dict key; None for names outside the network."""
    match = _TF_NAME.match(tf_name)
    if match is None:
        return None
    scope, layer, kind = match.groups()
    module = {v: k for k, v in TF_SCOPES.items()}[scope]
    return f"{module}.{layer}.{'weight' if kind == 'kernel' else 'bias'}"


def _to_tf_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[2], shape[3], shape[1], shape[0]) if len(shape) == 4 else tuple(shape)


def read_tf_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, ...]]]:
    """A TensorFlow checkpoint -> (state dict with our keys, {TF name: TF shape} of every variable).

    Kernels are transposed from TensorFlow's (kh, kw, in, out) to PyTorch's (out, in, kh, kw).
    Variables whose names are not U2Fusion's are left out of the state dict (they are reported
    as unexpected by the loader).
    """
    reader = TFCheckpointReader(path)
    shapes = {name: entry.shape for name, entry in reader.entries.items()}
    weights = {}
    for name in reader.entries:
        key = state_key(name)
        if key is None:
            continue
        array = reader.read(name)
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(3, 2, 0, 1) if array.ndim == 4 else array))
        weights[key] = tensor
    return weights, shapes


def check_tf_variables(network: nn.Module, shapes: Mapping[str, tuple[int, ...]], source: str) -> None:
    """Raise `CheckpointMismatchError` naming TensorFlow variables unless the checkpoint holds
    exactly the network's variables with the right (TensorFlow-layout) shapes."""
    want = {tf_variable_name(k): _to_tf_layout(tuple(v.shape)) for k, v in network.state_dict().items()}
    missing = sorted(set(want) - set(shapes))
    unexpected = sorted(set(shapes) - set(want))
    mis_shaped = [(k, tuple(shapes[k]), want[k]) for k in sorted(set(want) & set(shapes))
                  if tuple(shapes[k]) != want[k]]
    if missing or unexpected or mis_shaped:
        raise CheckpointMismatchError(f"{source} (TensorFlow variables, kernels as kh, kw, in, out)",
                                      missing, unexpected, mis_shaped)


def convert_tf_checkpoint(prefix: str | Path, out: str | Path) -> Path:
    """Write the official TensorFlow checkpoint as a PyTorch state dict (our keys) to `out`."""
    model = U2Fusion.from_checkpoint(prefix)
    out = Path(out)
    torch.save(model.network.state_dict(), out)
    return out


# -- the protocol's arithmetic ----------------------------------------------------------------------

def bytescale(y: torch.Tensor, cmin: torch.Tensor | float, cmax: torch.Tensor | float) -> torch.Tensor:
    """`scipy.misc.bytescale` (scipy <= 1.2) on a float32 image: levels 0..255 as float32.

    `(y - cmin) * (255 / (cmax - cmin))`, clipped to [0, 255], + 0.5, truncated; a zero range
    counts as 1. The arithmetic is float32, as scipy's on the float32 output of the network.
    """
    y = y.float()
    cmin = torch.as_tensor(cmin, dtype=torch.float32, device=y.device)
    cmax = torch.as_tensor(cmax, dtype=torch.float32, device=y.device)
    span = float(cmax - cmin)
    scale = torch.tensor(255.0 / (span if span != 0 else 1.0), dtype=torch.float32, device=y.device)
    return torch.floor(((y - cmin) * scale).clamp(0.0, 255.0) + 0.5)


def scale_luma(y: torch.Tensor, mode: str) -> torch.Tensor:
    """The fused Y (H, W) float32 -> its 8-bit levels as the official test script saves them."""
    if mode == "minmax":   # scipy.misc.imsave(path, y)
        return bytescale(y, y.min(), y.max())
    if mode == "max":      # scipy.misc.toimage(y, cmin=0.0, cmax=np.max(y)).save(path)
        return bytescale(y, 0.0, y.max())
    return bytescale(y, 0.0, 1.0)


def matlab_round(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's round: half away from zero."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def matlab_chroma_uint8(rgb8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cb, Cr of MATLAB `rgb2ycbcr` on a uint8 image given as float64 levels (3, H, W): rounded levels."""
    r, g, b = rgb8[0] / 255.0, rgb8[1] / 255.0, rgb8[2] / 255.0
    planes = []
    for offset, (wr, wg, wb) in CBCR_ROWS:
        planes.append(matlab_round(((offset + wr * r + wg * g + wb * b) / 255.0) * 255.0).clamp(0, 255))
    return planes[0], planes[1]


def fuse_chroma(c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """`fusedY2RGB.m`: each chroma weighted by its distance from neutral (128); 128 where both are."""
    w1, w2 = (c1 - 128.0).abs(), (c2 - 128.0).abs()
    both_neutral = (c1 == 128.0) & (c2 == 128.0)
    fused = (c1 * w1 + c2 * w2) / torch.where(both_neutral, torch.ones_like(w1), w1 + w2)
    return torch.where(both_neutral, torch.full_like(c1, 128.0), fused)


def ycbcr_to_rgb_uint8(y8: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    """`YCbCr2rgb.m` then MATLAB `uint8`: (3, H, W) float64 levels 0..255 (integers)."""
    shifted = (y8 - 16.0, cb - 128.0, cr - 128.0)
    planes = [row[0] * shifted[0] + row[1] * shifted[1] + row[2] * shifted[2] for row in YCBCR2RGB_MATRIX]
    return matlab_round(torch.stack(planes)).clamp(0.0, 255.0)


# -- adapter ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class U2FusionProtocol:
    """How exposures enter the network and how its Y is saved (see the module docstring).

    `first`: which exposure is SOURCE1 ("under": MEFB's outputs; "over": the official
    `test_main.py` multi-exposure paths). `luma`: "ntsc" (0.3, 0.59, 0.11: MEFB) or "bt601"
    (0.299, 0.587, 0.114: `test_main.py` since 2022). `y_scaling`: "minmax" (`imsave`, 2019 to
    2023, MEFB), "max" (`toimage(cmin=0, cmax=max)`, since Nov 2023), "none" (`round(255 y)`). The defaults
    reproduce MEFB; the official `test_main.py` at HEAD followed by `fusedY2RGB.m` is
    `first="over", luma="bt601", y_scaling="max"`.
    """

    first: str = "under"
    luma: str = "ntsc"
    y_scaling: str = "minmax"

    def __post_init__(self) -> None:
        if self.luma not in LUMA_WEIGHTS:
            raise ValueError(f"{METHOD}: luma must be one of {', '.join(LUMA_WEIGHTS)}, got {self.luma!r}")
        if self.first not in ("under", "over"):
            raise ValueError(f"{METHOD}: first must be 'under' or 'over', got {self.first!r}")
        if self.y_scaling not in ("minmax", "max", "none"):
            raise ValueError(f"{METHOD}: y_scaling must be 'minmax', 'max' or 'none', got {self.y_scaling!r}")


# Tiled == untiled up to summation order; the min-max stretch of Y and the 8-bit chain can turn that
# into 2 levels (tests/test_method_interface.py).
@register_method("mef", scale_specific=False, tiles=True, tile_tolerance=2 / 255, min_input_size=2, paper_order=4,
                 trainable=False, not_trainable="training needs pretrained VGG-16 features, which cannot be "
                                                "downloaded here")
class U2Fusion(DeepMethod):
    """U2Fusion behind the harness convention: `fuse(over, under)` on float32 RGB (N, 3, H, W) in [0, 1].

    Runtime options: `device` ("cpu" or "cuda"); `first`, `luma` and `y_scaling` (`U2FusionProtocol`,
    kept as `chain`); `tile` (input pixels per tile side for the network; 0 = whole image) and
    `tile_overlap`; `protocol` (`cfanet.protocols`): "exact" and "official" compute the same
    chain (the official one: MEFB's published U2Fusion images are its output), except that
    "official" never tiles, as the release script does not.
    """

    name: ClassVar[str] = METHOD
    # Inference stays fp32: under autocast PSNR moves by up to 9.1 dB (bf16) / 1.8 dB (fp16) on the demo scenes (tests/test_autocast.py).
    autocast_dtypes: ClassVar[tuple[str, ...]] = ()
    # Official: `Net.py` (n = 44, five dense convolutions, decoder 128-64-32-1).
    # Small: the same code path, for the demo profile (trained or random weights).
    configs: ClassVar[Mapping[str, Mapping]] = {
        "official": {"features": 44, "dense_layers": 5, "decoder_channels": (128, 64, 32)},
        "small": {"features": 8, "dense_layers": 3, "decoder_channels": (16, 8)},
    }
    default_tile_overlap: ClassVar[int] = 24   # > 2 x the receptive radius (10): tiled == untiled
    protocols: ClassVar[tuple[str, ...]] = ("exact", "official")

    def __init__(self, network: U2FusionNet, *, device: str | torch.device = "cpu", first: str = "under",
                 luma: str = "ntsc", y_scaling: str = "minmax", tile: int = 0, tile_overlap: int | None = None,
                 protocol: str = "exact", weights: str = "random init"):
        self.chain = U2FusionProtocol(first=first, luma=luma, y_scaling=y_scaling)
        self._setup(network, device=device, tile=tile, tile_overlap=tile_overlap, protocol=protocol)
        self.weights = weights

    def __repr__(self) -> str:
        return (f"U2Fusion(weights={self.weights!r}, first={self.chain.first!r}, luma={self.chain.luma!r}, "
                f"y_scaling={self.chain.y_scaling!r}, device={str(self.device)!r})")

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def build_network(cls, **config) -> U2FusionNet:
        return init_official_weights(U2FusionNet(**config))

    @classmethod
    def create(cls, size: str = "official", seed: int | None = 0, **runtime) -> "U2Fusion":
        """A model of configuration `size` ("official" or "small") with seeded random weights
        (the official truncated-normal initialisation)."""
        config = cls.check_size(size)
        cls.seed(seed)
        return cls(cls.build_network(**config), weights=f"random init ({size}, seed {seed})", **runtime)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **runtime) -> "U2Fusion":
        """Load weights strictly, from the official TensorFlow checkpoint (its prefix, e.g.
        `.../model.ckpt`, or its `.index` file) or from a PyTorch state dict file with our keys
        (as `convert_tf_checkpoint` writes). The configuration is read from the weights' shapes.
        A mismatch raises `CheckpointMismatchError` naming the variables (TensorFlow names for a
        TensorFlow checkpoint, our keys otherwise)."""
        source = str(path)
        if not Path(path).is_file() and not is_tf_checkpoint(path):
            raise CheckpointError(f"{source}: no such file, and no TensorFlow checkpoint with this prefix "
                                  f"({Path(path).name}.index)")
        if is_tf_checkpoint(path):
            weights, tf_shapes = read_tf_weights(path)
            network = U2FusionNet(**(config_from_state_dict(weights) or cls.configs["official"]))
            check_tf_variables(network, tf_shapes, source)
        else:
            weights = unwrap_state_dict(read_checkpoint(path), source=source)
            network = U2FusionNet(**(config_from_state_dict(weights) or cls.configs["official"]))
            check_state_dict(network.state_dict(), weights, source=source)
        network.load_state_dict(weights, strict=True)
        return cls(network, weights=source, **runtime)

    # -- inference --------------------------------------------------------------------------------

    def _check(self, over: torch.Tensor, under: torch.Tensor) -> None:
        check_pair(over, under, METHOD)
        height, width = over.shape[-2:]
        if height < 2 or width < 2:
            raise ValueError(f"{METHOD}: images must be at least 2x2 pixels (reflect padding), got {height}x{width}")
        if over.shape[0] == 0:
            raise ValueError(f"{METHOD}: empty batch")
        for role, image in (("over", over), ("under", under)):
            if not torch.isfinite(image).all():
                raise ValueError(f"{METHOD}: {role} contains NaN or infinite values")

    @staticmethod
    def _levels(image: torch.Tensor) -> torch.Tensor:
        """float RGB in [0, 1] -> 8-bit levels as float64 (round half up, as the files would hold)."""
        return torch.floor(image.double().clamp(0.0, 1.0) * 255.0 + 0.5)

    def _luma(self, levels: torch.Tensor) -> torch.Tensor:
        """Y of `imread(...) / 255.0` (float64) fed as float32, (N, 1, H, W)."""
        rgb = levels / 255.0
        wr, wg, wb = LUMA_WEIGHTS[self.chain.luma]
        return (wr * rgb[:, 0:1] + wg * rgb[:, 1:2] + wb * rgb[:, 2:3]).float()

    def _sources(self, over8: torch.Tensor, under8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        over_y, under_y = self._luma(over8), self._luma(under8)
        return (under_y, over_y) if self.chain.first == "under" else (over_y, under_y)

    def network_inputs(self, over: torch.Tensor, under: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(SOURCE1, SOURCE2): the float32 (N, 1, H, W) Y images the network is fed, in protocol
        order, on `over`'s device. Inputs as for `fuse`."""
        self._check(over, under)
        sources = self._sources(self._levels(over.to(self.device)), self._levels(under.to(self.device)))
        return sources[0].to(over.device), sources[1].to(over.device)

    def _network_y(self, source1: torch.Tensor, source2: torch.Tensor) -> torch.Tensor:
        pair = torch.cat((source1, source2), dim=1)
        return tiled_apply(self.network, pair, 1, max(self.tile, 0), self.tile_overlap)

    @torch.no_grad()
    def fuse_luma(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """The network's fused Y, float32 (N, 1, H, W) in (0, 1), before the 8-bit saving; on
        `over`'s device. Inputs as for `fuse`."""
        self._check(over, under)
        sources = self._sources(self._levels(over.to(self.device)), self._levels(under.to(self.device)))
        return self._network_y(*sources).to(over.device)

    @torch.no_grad()
    def fuse(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """Fuse two exposures: float32 RGB (N, 3, H, W) in [0, 1] each -> float32 RGB (N, 3, H, W),
        the official chain's 8-bit result divided by 255, on `over`'s device."""
        self._check(over, under)
        over8 = self._levels(over.to(self.device))
        under8 = self._levels(under.to(self.device))
        fused_y = self._network_y(*self._sources(over8, under8))
        out = []
        for i in range(over.shape[0]):
            y8 = scale_luma(fused_y[i, 0], self.chain.y_scaling).double()
            # fusedY2RGB.m reads the under-exposure as image 1 (folder 'ue') and the over as image 2.
            cb_u, cr_u = matlab_chroma_uint8(under8[i])
            cb_o, cr_o = matlab_chroma_uint8(over8[i])
            out.append(ycbcr_to_rgb_uint8(y8, fuse_chroma(cb_u, cb_o), fuse_chroma(cr_u, cr_o)))
        return (torch.stack(out) / 255.0).float().to(over.device)

    def training_loss(self, *args, **kwargs):
        """Not available: U2Fusion's loss needs ImageNet-pretrained VGG-16 features (see the module docstring)."""
        raise NotImplementedError(
            "U2Fusion training is not supported: its adaptive information-preservation loss weighs the "
            "sources by gradients of ImageNet-pretrained VGG-16 features (the official vgg16.npy, distributed "
            "via Baidu Pan, outside the repository), which cannot be downloaded here; a randomly initialised "
            "VGG would be a different method. Use the official weights (U2Fusion.from_checkpoint) or the "
            "small configuration with seeded random weights.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m baselines.mef.u2fusion",
        description="Convert the official U2Fusion TensorFlow checkpoint to a PyTorch state dict.")
    parser.add_argument("checkpoint", help="TensorFlow checkpoint prefix (e.g. model/model.ckpt) or its .index file")
    parser.add_argument("output", help="where to write the state dict (.pt)")
    args = parser.parse_args(argv)
    out = convert_tf_checkpoint(args.checkpoint, args.output)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
