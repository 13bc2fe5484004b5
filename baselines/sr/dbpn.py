"""D-DBPN: the dense deep back-projection network (Haris, Shakhnarovich and Ukita, CVPR 2018).

The network alternates up- and down-projection units (Sec. 3.1, Fig. 3 of the paper) that
project the error between a reconstruction and its source back onto it, and connects them
densely (Sec. 3.2): every down-projection sees all the high-resolution maps produced so far and
every up-projection all the low-resolution ones, squeezed to `base_filter` channels by a 1x1
convolution. The reconstruction convolution reads the concatenation of every stage's
high-resolution map (Sec. 3.3), newest first.

Parameter names and shapes follow the official PyTorch code (alterzero/DBPN-Pytorch, `dbpn.py`
`Net` and `base_networks.py`), so the released `DBPN_x2.pth` / `DBPN_x4.pth` (saved from a
`DataParallel` wrapper: `module.` prefix, a plain state dict) load strictly. The official
`UpBlock`/`D_UpBlock` (and `DownBlock`/`D_DownBlock`) pairs are one class each here: the dense
variant is the plain one with a 1x1 `conv` in front, built when the unit has more than one input.
The official `Net` writes its seven stages out by hand; here the number of stages is a
parameter (the official configuration is 7), so the small configuration runs the same code.

Inference protocol (`eval.py` with `--model_type DBPN`): the LR image is read with PIL as RGB and
converted with `ToTensor` (RGB [0, 1], no mean shift); the prediction is `model(input)`; the
result is clamped to [0, 1] and written as 8 bits (`cv2.imwrite` of `x * 255`, which rounds).
`eval.py` can add a PIL-bicubic upsampling of the input (`--residual`), but its default is off,
and the D-DBPN of the paper has no global residual, so no bicubic term is added here. (`main.py`
defaults `--residual` to True, with the checkpoint prefix "tpami_residual": that is the training
of the later TPAMI extension, DBPN-RES, whose models eval.py loads as "DBPN-RES-MR64-3". The
released DBPN_x*.pth files themselves are not in the stored mirror, so this reading of the
default is not checked against their outputs; should they turn out to be residual-trained, the
bicubic term would have to be PIL's, as `rescale_img` in `dataset.py`.) `eval.py`'s `chop_forward` (quarters with an 8-pixel margin) and
`x8_forward` (self-ensemble) are optional, off by default; the adapter's tiling and self-ensemble
stand in for them.

Protocols (`cfanet.protocols`): "exact" (default) is the network on the whole image (or tiled), its
float output rounded half up by the harness; "official" is `eval.py` with its defaults bit for bit:
the whole image, one image per forward pass, and `save_img`'s float32 `x * 255` converted to 8 bits
by OpenCV (round half to even). The two differ only on exact .5 ties. The released result
images are the official protocol's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from baselines.sr.base import SuperResolver
from cfanet.methods import register_method
from cfanet.protocols import EXACT, OFFICIAL

# Projection kernel, stride and padding per scale (official `Net.__init__`). Every projection
# maps H -> scale * H (deconvolution) or scale * H -> H (convolution) exactly, for any H.
PROJECTION = {2: (6, 2, 2), 4: (8, 4, 2), 8: (12, 8, 2)}


# -- blocks -----------------------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """Convolution, then PReLU (one shared slope) unless `activation` is None."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 activation: str | None = "prelu"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.act = nn.PReLU() if activation == "prelu" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.act is None else self.act(x)


class DeconvBlock(nn.Module):
    """Transposed convolution, then PReLU (one shared slope)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding)
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.deconv(x))


class UpBlock(nn.Module):
    """Up-projection unit (paper Eq. 1-4); dense (`D_UpBlock`) when it reads `num_inputs` > 1 LR maps.

    L -> H0 = up(L); L0 = down(H0); H1 = up(L0 - L); output H0 + H1.
    (N, num_inputs * num_filter, h, w) -> (N, num_filter, scale * h, scale * w).
    """

    def __init__(self, num_filter: int, kernel_size: int, stride: int, padding: int, num_inputs: int = 1):
        super().__init__()
        self.conv = ConvBlock(num_filter * num_inputs, num_filter, 1, 1, 0) if num_inputs > 1 else None
        self.up_conv1 = DeconvBlock(num_filter, num_filter, kernel_size, stride, padding)
        self.up_conv2 = ConvBlock(num_filter, num_filter, kernel_size, stride, padding)
        self.up_conv3 = DeconvBlock(num_filter, num_filter, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        h0 = self.up_conv1(x)
        l0 = self.up_conv2(h0)
        h1 = self.up_conv3(l0 - x)  # the back-projected LR residual
        return h1 + h0


class DownBlock(nn.Module):
    """Down-projection unit (paper Eq. 5-8); dense (`D_DownBlock`) when it reads `num_inputs` > 1 HR maps.

    H -> L0 = down(H); H0 = up(L0); L1 = down(H0 - H); output L0 + L1.
    (N, num_inputs * num_filter, scale * h, scale * w) -> (N, num_filter, h, w).
    """

    def __init__(self, num_filter: int, kernel_size: int, stride: int, padding: int, num_inputs: int = 1):
        super().__init__()
        self.conv = ConvBlock(num_filter * num_inputs, num_filter, 1, 1, 0) if num_inputs > 1 else None
        self.down_conv1 = ConvBlock(num_filter, num_filter, kernel_size, stride, padding)
        self.down_conv2 = DeconvBlock(num_filter, num_filter, kernel_size, stride, padding)
        self.down_conv3 = ConvBlock(num_filter, num_filter, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        l0 = self.down_conv1(x)
        h0 = self.down_conv2(l0)
        l1 = self.down_conv3(h0 - x)  # the back-projected HR residual
        return l1 + l0


# -- network ----------------------------------------------------------------------------------------

class DDBPN(nn.Module):
    """D-DBPN with `num_stages` up-projections (T in the paper): RGB (N, 3, h, w) -> (N, 3, s*h, s*w).

    Modules, in the official order and names: `feat0` (3x3, `feat` channels) and `feat1` (1x1,
    `base_filter`), then `up1, down1, up2, down2, ..., down{T-1}, up{T}`, where `down{t}` reads the
    t HR maps so far and `up{t}` the t-1 LR maps so far; `output_conv` (3x3) reads all T HR maps.
    """

    def __init__(self, num_channels: int = 3, base_filter: int = 64, feat: int = 256, num_stages: int = 7,
                 scale_factor: int = 2):
        super().__init__()
        if scale_factor not in PROJECTION:
            raise ValueError(f"D-DBPN has scales {sorted(PROJECTION)}, got {scale_factor}")
        if num_stages < 2:
            raise ValueError(f"D-DBPN needs at least 2 stages, got {num_stages}")
        kernel, stride, padding = PROJECTION[scale_factor]
        self.num_stages = num_stages
        self.feat0 = ConvBlock(num_channels, feat, 3, 1, 1)
        self.feat1 = ConvBlock(feat, base_filter, 1, 1, 0)
        self.up1 = UpBlock(base_filter, kernel, stride, padding)
        for t in range(2, num_stages + 1):
            self.add_module(f"down{t - 1}", DownBlock(base_filter, kernel, stride, padding, num_inputs=t - 1))
            self.add_module(f"up{t}", UpBlock(base_filter, kernel, stride, padding, num_inputs=t - 1))
        self.output_conv = ConvBlock(num_stages * base_filter, num_channels, 3, 1, 1, activation=None)
        self._init_weights()

    def _init_weights(self) -> None:
        # As the official code: He-normal weights, zero biases (PReLU slopes keep 0.25).
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feat1(self.feat0(x))
        highs = [self.up1(x)]
        lows: list[torch.Tensor] = []
        for t in range(2, self.num_stages + 1):
            # Dense connections: the newest map first, as the official concatenations.
            lows.append(getattr(self, f"down{t - 1}")(torch.cat(highs[::-1], 1)))
            highs.append(getattr(self, f"up{t}")(torch.cat(lows[::-1], 1)))
        return self.output_conv(torch.cat(highs[::-1], 1))


# -- adapter ----------------------------------------------------------------------------------------

@register_method("sr", tiles=True, tile_tolerance=1e-4, paper_order=1)
class DBPN(SuperResolver):
    """D-DBPN behind the harness convention; the official protocol is the network on RGB [0, 1]."""

    name: ClassVar[str] = "DBPN"
    protocols: ClassVar[tuple[str, ...]] = (EXACT, OFFICIAL)
    configs: ClassVar[Mapping[str, Mapping]] = {
        "official": {"base_filter": 64, "feat": 256, "num_stages": 7},  # eval.py, model_type "DBPN"
        "small": {"base_filter": 16, "feat": 32, "num_stages": 3},
    }
    supports_bf16: ClassVar[bool] = True
    # Peak memory per input pixel, official configuration, fp32, one forward pass under no_grad:
    # the growth of the peak resident set on CPU (torch 2.13, 2 threads) between 48x48 and 96x96
    # inputs: x2 38 kB, x4 85 kB (rounded up below). x8 is not measured: x4 times 4, as the
    # high-resolution maps that dominate grow with the scale squared. The class value is x4's;
    # an instance uses its scale's.
    _BYTES_PER_INPUT_PIXEL: ClassVar[Mapping[int, float]] = {2: 40_000.0, 4: 90_000.0, 8: 360_000.0}
    bytes_per_input_pixel: ClassVar[float] = 90_000.0

    # Tiles share 32 input pixels, so every kept output pixel has >= 16 LR pixels of context on
    # each side: tiled and untiled outputs then differ by < 1e-4 (x2, seeded weights; x4 reaches
    # less far). tests/test_sr_dbpn.py measures it.
    default_tile_overlap: ClassVar[int] = 32

    def __init__(self, network: nn.Module, scale: int, *, tile_overlap: int | None = None, **runtime):
        super().__init__(network, scale, tile_overlap=tile_overlap, **runtime)
        self.bytes_per_input_pixel = self._BYTES_PER_INPUT_PIXEL.get(scale, type(self).bytes_per_input_pixel)

    @classmethod
    def build_network(cls, scale: int, **config) -> nn.Module:
        return DDBPN(num_channels=3, scale_factor=scale, **config)

    @classmethod
    def infer_scale(cls, weights: Mapping[str, torch.Tensor]) -> int | None:
        """The scale from the projection kernel size (6: x2, 8: x4, 12: x8)."""
        deconv = weights.get("up1.up_conv1.deconv.weight")
        if deconv is None or deconv.dim() != 4:
            return None
        by_kernel = {kernel: scale for scale, (kernel, _, _) in PROJECTION.items()}
        return by_kernel.get(int(deconv.shape[-1]))

    def forward_protocol(self, lr: torch.Tensor) -> torch.Tensor:
        # eval.py: prediction = model(input) on ToTensor RGB [0, 1]; no mean shift, no residual.
        return self.network(lr)
