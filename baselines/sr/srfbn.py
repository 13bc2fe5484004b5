"""SRFBN: Feedback Network for Image Super-Resolution (Li et al., CVPR 2019).

Re-implementation of Paper99/SRFBN_CVPR19 `networks/srfbn_arch.py` (`SRFBN`, `FeedbackBlock`) with
the official parameter names, so the released `SRFBN_x2_BI.pth` / `SRFBN_x4_BI.pth` load strictly.

The network (paper Sec. 3, Fig. 2): an LR feature extraction block (3x3 conv to 4m features, 1x1
conv to m), a feedback block (FB) unrolled over T steps whose hidden state is its own previous
output, and a reconstruction block (deconvolution to HR, 3x3 conv to RGB) added to the bilinear
upsampling of the input. The FB is a stack of G projection groups: each group projects
the LR features up (deconvolution) and back down (strided convolution), and is densely fed by all
earlier groups' outputs of the same resolution through 1x1 "transition" convolutions.
(The paper's symbols are used in the comments; its equation numbers are not checked here.)
Every step produces an SR image (used for curriculum training); the last is the result.

Differences from the official module, none of which changes the fp32 output:

- stateless: the official `FeedbackBlock` keeps `last_hidden`/`should_reset` on the module (and
  allocates it with `.cuda()`); here the hidden state is an argument and a return value, so
  calls are independent and the network runs on any device;
- the reconstruction (`out`, `conv_out`) of the intermediate steps can be skipped at inference
  (`all_steps=False`), since nothing depends on it;
- the image-range arithmetic (mean shift, bilinear global residual, final sum) runs in fp32 even
  under bf16 autocast; only the feature convolutions run in bf16 (on a 32x32 crop, official x2,
  seeded weights, CPU autocast: max / mean |bf16 - fp32| 3.0e-3 / 3.9e-4 on [0, 1], against
  6.6e-3 / 1.5e-3 with the mean shift and residual in bf16 too).

Inference protocol of the official `test.py` / `solvers/SRSolver.py` (options `test_SRFBN_x*_BI.json`):
images read as RGB uint8 and fed as float on the [0, 255] scale (`rgb_range` 255), the DIV2K mean
is subtracted and re-added by the `MeanShift` 1x1 convolutions inside the network, the last step's
output is the result, and it is quantised for saving and scoring (`util.quantize`: clamp to
[0, 255] and `round`). The official options also set `use_chop`
(`SRSolver._overlap_crop_forward`: 4 overlapping quarters, `shave` 10, a quarter of 100,000 LR
pixels or more split again, and, with `n_GPUs = 2` hard-coded, the quarters through the network two
at a time). Protocols (`cfanet.protocols`):

- "exact" (default): `SRFBN.forward_protocol` multiplies the harness's [0, 1] input by 255 and
  divides the output by 255 (whole image, or the shared tiling `tile`, `tile_overlap`); the harness
  clamps and quantises (half up) when it writes or scores an image;
- "official": the release script bit for bit: the chopped quarters in pairs (`baselines.sr.chop`),
  one image per forward pass, `util.quantize` (half to even) on [0, 255]. The published result
  images and numbers come from this protocol (quarters sharing 20 LR pixels: about 2e-7 from the
  whole image on [0, 1], with random weights, plus the rounding of ties).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.sr.base import SuperResolver
from baselines.sr.chop import chop_forward
from cfanet.methods import register_method
from cfanet.protocols import EXACT, OFFICIAL

# DIV2K RGB mean on the [0, 255] scale (`rgb_mean` in the official `SRFBN.__init__`).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
RGB_RANGE = 255.0
# `SRSolver._overlap_crop_forward` defaults (shave, min_size) and its hard-coded `n_GPUs`: quarters
# go through the network in pairs.
CHOP_SHAVE, CHOP_MIN_SIZE, CHOP_GROUP = 10, 100_000, 2

# Up/down projection geometry per scale: (kernel_size, stride, padding), as in the official code.
PROJECTION = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2), 8: (12, 8, 2)}

# The PReLU initial slope of the official `blocks.activation` (`slope=0.2`).
PRELU_INIT = 0.2


# -- blocks -----------------------------------------------------------------------------------------

class ConvBlock(nn.Sequential):
    """Convolution followed by PReLU (or nothing): the official `blocks.ConvBlock` with
    `norm_type=None`, whose entries are `<name>.0.*` (conv) and `<name>.1.weight` (PReLU).

    `padding=None` keeps the spatial size ("valid padding" in the official code: (k - 1) // 2).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None, activation: bool = True):
        if padding is None:
            padding = (kernel_size - 1) // 2
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)]
        if activation:
            layers.append(nn.PReLU(num_parameters=1, init=PRELU_INIT))
        super().__init__(*layers)


class DeconvBlock(nn.Sequential):
    """Transposed convolution followed by PReLU: the official `blocks.DeconvBlock` with `norm_type=None`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__(nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
                         nn.PReLU(num_parameters=1, init=PRELU_INIT))


class MeanShift(nn.Conv2d):
    """Adds `sign * 255 * mean` per channel as a fixed 1x1 convolution (identity weight).

    Its weight and bias are state-dict entries (`sub_mean.*`, `add_mean.*`) that the released
    checkpoints carry; they are frozen (`requires_grad=False`) as in the official `blocks.MeanShift`.
    """

    def __init__(self, rgb_mean: tuple[float, float, float], sign: int = -1):
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * RGB_RANGE * torch.tensor(rgb_mean))
        for parameter in self.parameters():
            parameter.requires_grad = False


class FeedbackBlock(nn.Module):
    """The feedback block (paper Sec. 3.2, Fig. 3): G projection groups with dense connections.

    `forward(x, hidden)`: LR features `x` and the previous step's output `hidden` (N, m, h, w)
    -> this step's output (N, m, h, w), which is also the next step's `hidden`.
    """

    def __init__(self, num_features: int, num_groups: int, scale: int):
        super().__init__()
        kernel_size, stride, padding = PROJECTION[scale]
        m = num_features
        self.num_groups = num_groups
        # L_0 = C_0([F_in, F_out^{t-1}]): fuse the input features with the fed-back hidden state.
        self.compress_in = ConvBlock(2 * m, m, kernel_size=1)
        self.upBlocks = nn.ModuleList(
            DeconvBlock(m, m, kernel_size, stride, padding) for _ in range(num_groups))
        self.downBlocks = nn.ModuleList(
            ConvBlock(m, m, kernel_size, stride=stride, padding=padding) for _ in range(num_groups))
        # Group g > 0 first compresses the g+1 feature maps produced so far at its input resolution.
        self.uptranBlocks = nn.ModuleList(
            ConvBlock(m * (g + 1), m, kernel_size=1) for g in range(1, num_groups))
        self.downtranBlocks = nn.ModuleList(
            ConvBlock(m * (g + 1), m, kernel_size=1) for g in range(1, num_groups))
        # F_out^t = C_FF([L_1, ..., L_G]): fuse the LR outputs of all groups.
        self.compress_out = ConvBlock(num_groups * m, m, kernel_size=1)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        low = [self.compress_in(torch.cat((x, hidden), dim=1))]   # L_0
        high = []
        for g in range(self.num_groups):
            # H_g = up(compress([L_0, ..., L_{g-1}])); L_g = down(compress([H_1, ..., H_g])).
            lr_in = torch.cat(low, dim=1)
            if g > 0:
                lr_in = self.uptranBlocks[g - 1](lr_in)
            high.append(self.upBlocks[g](lr_in))
            hr_in = torch.cat(high, dim=1)
            if g > 0:
                hr_in = self.downtranBlocks[g - 1](hr_in)
            low.append(self.downBlocks[g](hr_in))
        return self.compress_out(torch.cat(low[1:], dim=1))   # L_0 is left out


def _full_precision(x: torch.Tensor):
    """A region where autocast is off (no-op without autocast): image-range values need fp32."""
    return torch.autocast(device_type=x.device.type, enabled=False) if torch.is_autocast_enabled(x.device.type) \
        else contextlib.nullcontext()


# -- network ----------------------------------------------------------------------------------------

class SRFBNNet(nn.Module):
    """The SRFBN network (official `srfbn_arch.SRFBN` with PReLU and no normalisation).

    `forward(x)`: RGB (N, 3, H, W) on the [0, 255] scale -> the SR image of every step, a list of
    `num_steps` tensors (N, 3, scale*H, scale*W) on the [0, 255] scale (not clamped); the last one
    is the result. With `all_steps=False` only the last step is reconstructed (a one-item list).
    """

    def __init__(self, scale: int, num_features: int = 64, num_steps: int = 4, num_groups: int = 6,
                 in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        if scale not in PROJECTION:
            raise ValueError(f"SRFBN supports scales {sorted(PROJECTION)}, got {scale}")
        kernel_size, stride, padding = PROJECTION[scale]
        self.scale, self.num_steps = scale, num_steps
        self.sub_mean = MeanShift(DIV2K_RGB_MEAN, sign=-1)
        # LR feature extraction block: F_in = conv1x1(conv3x3(I_LR)).
        self.conv_in = ConvBlock(in_channels, 4 * num_features, kernel_size=3)
        self.feat_in = ConvBlock(4 * num_features, num_features, kernel_size=1)
        self.block = FeedbackBlock(num_features, num_groups, scale)
        # Reconstruction block: I_Res^t = conv3x3(deconv(F_out^t)).
        self.out = DeconvBlock(num_features, num_features, kernel_size, stride, padding)
        self.conv_out = ConvBlock(num_features, out_channels, kernel_size=3, activation=False)
        self.add_mean = MeanShift(DIV2K_RGB_MEAN, sign=1)

    def forward(self, x: torch.Tensor, all_steps: bool = True) -> list[torch.Tensor]:
        with _full_precision(x):
            x = self.sub_mean(x.float())
            # Global residual: I_SR^t = I_Res^t + bilinear upsampling of the (mean-shifted) input.
            upsampled = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        features = self.feat_in(self.conv_in(x))
        hidden = features   # the first step feeds back its own input features (official `last_hidden.copy_(x)`)
        outputs = []
        for step in range(self.num_steps):
            hidden = self.block(features, hidden)
            if all_steps or step == self.num_steps - 1:
                residual = self.conv_out(self.out(hidden))
                with _full_precision(x):
                    outputs.append(self.add_mean(upsampled + residual.float()))
        return outputs


def init_official_weights(network: nn.Module) -> nn.Module:
    """The official initialisation for training from scratch (`networks.weights_init_kaiming`):
    Kaiming-normal (fan_in, a=0) convolution and deconvolution weights, zero biases; the mean
    shifts keep their fixed values and the PReLU slopes their 0.2."""
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not isinstance(module, MeanShift):
            nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return network


# -- adapter ----------------------------------------------------------------------------------------

@register_method("sr", tiles=True, tile_tolerance=1e-5, paper_order=3)
class SRFBN(SuperResolver):
    """SRFBN behind the harness convention (float32 RGB [0, 1] in and out)."""

    name = "SRFBN"
    protocols = (EXACT, OFFICIAL)
    native_range = RGB_RANGE
    # Official: `options/test/test_SRFBN_x{2,4}_BI.json` (x4 differs only by the scale).
    # Small: the same code path with fewer features, steps and groups, for the demo profile.
    configs: ClassVar[Mapping[str, Mapping]] = {
        "official": {"num_features": 64, "num_steps": 4, "num_groups": 6},
        "small": {"num_features": 16, "num_steps": 2, "num_groups": 3},
    }
    supports_bf16 = True
    # Peak memory of an fp32 no-grad official forward per input pixel: the growth of the peak RSS
    # between 32x32, 64x64 and 96x96 inputs, each in a fresh CPU process: x4 82-91 kB (the dense
    # HR feature lists of the feedback block dominate), x2 28-32 kB. The x4 figure, for both.
    bytes_per_input_pixel = 90_000.0
    # Overlap (input pixels) for which tiled equals untiled to 1e-4 on the tests' input.
    default_tile_overlap: ClassVar[int] = 32

    @classmethod
    def build_network(cls, scale: int, **config) -> SRFBNNet:
        """The network, with the official training initialisation (seeded by `create`)."""
        return init_official_weights(SRFBNNet(scale, **config))

    @classmethod
    def infer_scale(cls, weights: Mapping[str, torch.Tensor]) -> int | None:
        """The scale from the reconstruction deconvolution's kernel size (6: x2, 7: x3, 8: x4, 12: x8)."""
        weight = weights.get("out.0.weight")
        if weight is None or weight.dim() != 4:
            return None
        by_kernel = {kernel: scale for scale, (kernel, _stride, _pad) in PROJECTION.items()}
        return by_kernel.get(int(weight.shape[-1]))

    def forward_protocol(self, lr: torch.Tensor) -> torch.Tensor:
        return self.network(lr * RGB_RANGE, all_steps=False)[-1] / RGB_RANGE

    def forward_official(self, lr: torch.Tensor) -> torch.Tensor:
        """`test.py` with `use_chop`: `_overlap_crop_forward` (quarters in pairs, the last step's
        output) on [0, 255]."""
        def last_step(x: torch.Tensor) -> torch.Tensor:
            return self.network(x, all_steps=False)[-1]

        return chop_forward(last_step, lr * RGB_RANGE, self.scale, CHOP_SHAVE, CHOP_MIN_SIZE, CHOP_GROUP)
