"""SwinIR for classical image super-resolution.

Liang, Cao, Sun, Zhang, Van Gool, Timofte, "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops 2021. Re-implemented from the official `models/network_swinir.py`
(JingyunLiang/SwinIR), classical-SR variant only: upsampler `pixelshuffle`, residual connection
`1conv`. Parameter and buffer names and shapes are the official ones, so the released
`001_classicalSR_*_SwinIR-M_x{2,4}.pth` files (weights under `params`) load strictly.

The network (section 3 of the paper), on an image in [0, 1] minus the DIV2K mean:

1. shallow features: one 3x3 convolution `conv_first` (eq. 1);
2. deep features: K residual Swin Transformer blocks (RSTB), each L Swin Transformer layers (STL)
   followed by a 3x3 convolution and a residual connection (eqs. 5-6), then LayerNorm and a 3x3
   convolution `conv_after_body`, plus a long skip from the shallow features (eq. 3);
3. reconstruction: 3x3 conv + LeakyReLU, pixel-shuffle upsampling (x2 steps, or one x3 step),
   3x3 conv to RGB; the mean is added back.

Each STL is LayerNorm -> window multi-head self-attention with a learned relative position bias
-> residual, LayerNorm -> MLP (GELU) -> residual (eq. 7). Windows are 8x8; every second layer
shifts them by half a window (cyclic roll, with an attention mask that keeps pixels from
different sides of the wrap-around apart; masked logits get -100, as in the official code).

Buffers. `attn.relative_position_index` (the window's pairwise offsets) is in every state dict.
`attn_mask` (shifted layers only) is the mask for an `img_size` x `img_size` input, the training
patch size: 64 for the DF2K `s64w8` files, 48 for the DIV2K `s48w8` files, so its first dimension
differs between released files ((64/8)^2 = 64 windows or (48/8)^2 = 36). The official network uses
the stored mask when the input has exactly that size and recomputes it for any other size; the
mask is a pure function of the size, so both give the same numbers. We do the same, and the
adapter ignores the stored `attn_mask` entries when loading (`SwinIR.ignored_keys`), so one
configuration loads both families of files. Stochastic depth and dropout are training-only
(identity at inference) and are left out.

Inference protocol (`main_test_swinir.py`, reproduced by `SwinIR.forward_protocol`): RGB in
[0, 1]; H and W padded up to the next multiple of the window size *strictly above* the size
(`(h // 8 + 1) * 8 - h`, so a multiple of 8 still gets 8 more rows) by concatenating the
vertically (then horizontally) flipped image and cropping, i.e. symmetric padding with the edge
pixel repeated; the output cropped to `scale * size`. Since the official script's padding needs
at least 4 pixels (3 with the network's own reflect padding, `check_image_size`), inputs smaller
than 3x3 are refused.

Tiling. A windowed transformer only reproduces its untiled output in a tile whose windows sit on
the same grid as the whole image's. The adapter therefore tiles the *padded* image (as the official
script does) with tile sides and overlaps rounded to multiples of the window size, so every tile
origin is on the window grid; tiles are stitched by cropping at the middle of each overlap
(`cfanet.tiling.tiled_apply`). Off the grid the error does not shrink with the overlap (2e-2 to 1e-1
in our measurements); on it, it falls to < 1e-5 at the default overlap of 64 (figures in
tests/test_sr_swinir.py).

Protocols (`cfanet.protocols`): "exact" (default) is the above, the float output rounded half up
by the harness; "official" is `main_test_swinir.py` bit for bit: the same padding, the whole image
unless a tile is configured, and then its `test()` (tiles of the configured side, a multiple of 8,
overlapping by `--tile_overlap`, default 32, and averaged where they overlap: closer to a tiled
result than to the whole image's), one image per forward pass, `(x * 255.0).round()` in float32
(half to even). The released result images are the official protocol's (whole image).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from baselines.sr.base import SuperResolver
from cfanet.methods import register_method
from cfanet.protocols import EXACT, PROTOCOLS
from cfanet.tiling import tiled_apply

# DIV2K RGB mean, subtracted before and added after the network (not part of the state dict).
RGB_MEAN = (0.4488, 0.4371, 0.4040)
# Logit given to masked attention pairs in shifted windows (the official value; not -inf).
MASKED_LOGIT = -100.0


# -- window helpers ---------------------------------------------------------------------------------

def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C): non-overlapping windows, row-major."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window_size, window_size, width // window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, channels)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C)."""
    batch = windows.shape[0] // ((height // window_size) * (width // window_size))
    x = windows.view(batch, height // window_size, width // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(batch, height, width, -1)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(ws^2, ws^2) int64: index into the (2 ws - 1)^2 bias table of each pair of window positions."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)                                     # 2, N
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)  # N, N, 2
    return relative[..., 0] * (2 * window_size - 1) + relative[..., 1]


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """(nW, ws^2, ws^2) additive mask for shifted-window attention on an H x W map.

    After the cyclic shift by `shift_size`, the last row/column of windows holds pixels from both
    ends of the image; pairs from different regions get `MASKED_LOGIT`, all others 0.
    """
    regions = torch.zeros(1, height, width, 1, device=device)
    slices = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    label = 0
    for rows in slices:
        for cols in slices:
            regions[:, rows, cols, :] = label
            label += 1
    labels = window_partition(regions, window_size).view(-1, window_size * window_size)
    differ = labels.unsqueeze(1) - labels.unsqueeze(2)
    return differ.masked_fill(differ != 0, MASKED_LOGIT).masked_fill(differ == 0, 0.0)


# -- blocks -----------------------------------------------------------------------------------------

class Mlp(nn.Module):
    """Position-wise feed-forward network: Linear -> GELU -> Linear."""

    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative position bias (eq. 8):
    softmax(Q K^T / sqrt(d) + B [+ mask]) V."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * nW, N, C) window tokens; mask: (nW, N, N) additive, or None."""
        windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.num_heads, channels // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                          # each (B * nW, heads, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            num_windows = mask.shape[0]
            attn = attn.view(windows // num_windows, num_windows, self.num_heads, tokens, tokens) + mask[None, :, None]
            attn = attn.view(-1, self.num_heads, tokens, tokens)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(windows, tokens, channels))


class SwinTransformerBlock(nn.Module):
    """Swin Transformer layer (STL, eq. 7): (shifted) window attention and an MLP, each pre-norm
    with a residual connection.

    `input_resolution` is the training patch size; it only decides the stored `attn_mask` (and,
    if it is not larger than the window, shrinks the window and turns the shift off, as the
    official code does).
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int = 8,
                 shift_size: int = 0, mlp_ratio: float = 2.0):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if min(self.input_resolution) <= window_size:
            window_size, shift_size = min(self.input_resolution), 0
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        stored = shifted_window_mask(*self.input_resolution, window_size, shift_size) if shift_size > 0 else None
        self.register_buffer("attn_mask", stored)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, H*W, C) tokens of an H x W map (`x_size`); `mask`: the shifted-window mask for
        that size (used by shifted layers when it differs from `input_resolution`)."""
        height, width = x_size
        batch, _, channels = x.shape
        shortcut = x
        x = self.norm1(x).view(batch, height, width, channels)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            mask = self.attn_mask if tuple(x_size) == self.input_resolution else mask
        else:
            mask = None
        windows = window_partition(x, self.window_size).view(-1, self.window_size ** 2, channels)
        windows = self.attn(windows, mask=mask).view(-1, self.window_size, self.window_size, channels)
        x = window_reverse(windows, self.window_size, height, width)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = shortcut + x.reshape(batch, height * width, channels)
        return x + self.mlp(self.norm2(x))


class BasicLayer(nn.Module):
    """`depth` Swin Transformer layers, the odd ones with windows shifted by half a window."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio)
            for i in range(depth)])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, x_size, mask)
        return x


def tokens_to_map(x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W) feature map (the official `PatchUnEmbed`, patch size 1)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *x_size)


class RSTB(nn.Module):
    """Residual Swin Transformer Block (eqs. 5-6): STLs, a 3x3 convolution, a residual connection."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, resi_connection: str = "1conv"):
        super().__init__()
        if resi_connection != "1conv":
            raise ValueError(f"only resi_connection='1conv' (classical SR) is implemented, got {resi_connection!r}")
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        y = tokens_to_map(self.residual_group(x, x_size, mask), x_size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """Feature map -> tokens (patch size 1), with an optional LayerNorm (`patch_embed.norm`)."""

    def __init__(self, embed_dim: int, norm: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class Upsample(nn.Sequential):
    """Pixel-shuffle upsampling: log2(scale) steps of (3x3 conv to 4C, shuffle x2), or one x3 step."""

    def __init__(self, scale: int, num_feat: int):
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported (2^n or 3)")
        super().__init__(*layers)


# -- network ----------------------------------------------------------------------------------------

class SwinIRNetwork(nn.Module):
    """SwinIR for classical SR (upsampler `pixelshuffle`), official parameter names.

    Input RGB (B, 3, H, W) on the [0, `img_range`] scale; any H, W (reflect-padded to a multiple of
    the window inside, as the official `check_image_size`); output (B, 3, scale*H, scale*W).
    `img_size` is the training patch size (it only sets the stored `attn_mask` buffers).
    """

    num_feat = 64  # channels of the reconstruction module (fixed in the official code)

    def __init__(self, upscale: int = 2, img_size: int = 64, in_chans: int = 3, embed_dim: int = 180,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
                 window_size: int = 8, mlp_ratio: float = 2.0, img_range: float = 1.0,
                 upsampler: str = "pixelshuffle", resi_connection: str = "1conv"):
        super().__init__()
        if upsampler != "pixelshuffle":
            raise ValueError(f"only upsampler='pixelshuffle' (classical SR) is implemented, got {upsampler!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        self.upscale, self.window_size, self.img_range = upscale, window_size, img_range
        self.patches_resolution = (img_size, img_size)
        mean = RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        # 1. shallow feature extraction
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        # 2. deep feature extraction
        self.patch_embed = PatchEmbed(embed_dim, norm=True)
        self.layers = nn.ModuleList([
            RSTB(embed_dim, self.patches_resolution, depth, heads, window_size, mlp_ratio, resi_connection)
            for depth, heads in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        # 3. high-quality image reconstruction
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, self.num_feat, 3, 1, 1),
                                                  nn.LeakyReLU(inplace=True))
        self.upsample = Upsample(upscale, self.num_feat)
        self.conv_last = nn.Conv2d(self.num_feat, in_chans, 3, 1, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _shift_mask(self, x_size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        """The shifted-window mask for an input of `x_size`, computed once per forward (shared by
        all shifted layers); None when the stored masks apply or no layer is shifted."""
        block = next((b for layer in self.layers for b in layer.residual_group.blocks if b.shift_size > 0), None)
        if block is None or tuple(x_size) == block.input_resolution:
            return None
        return shifted_window_mask(*x_size, block.window_size, block.shift_size, device=device)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        mask = self._shift_mask(x_size, x.device)
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size, mask)
        return tokens_to_map(self.norm(x), x_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        pad_h = (self.window_size - height % self.window_size) % self.window_size
        pad_w = (self.window_size - width % self.window_size) % self.window_size
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        mean = self.mean.type_as(x)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        x = x / self.img_range + mean
        return x[:, :, :height * self.upscale, :width * self.upscale]


# -- configurations ---------------------------------------------------------------------------------

# Official classical-SR SwinIR-M (`main_test_swinir.py --task classical_sr`); x2 and x4 differ only
# by the scale. img_size 64 = the DF2K s64w8 files (the DIV2K s48w8 files load too, see above).
OFFICIAL = {"img_size": 64, "window_size": 8, "embed_dim": 180, "depths": (6, 6, 6, 6, 6, 6),
            "num_heads": (6, 6, 6, 6, 6, 6), "mlp_ratio": 2.0, "img_range": 1.0,
            "upsampler": "pixelshuffle", "resi_connection": "1conv"}
# Demo profile: same code path, 2 RSTBs of 2 layers, 60 channels.
SMALL = {**OFFICIAL, "embed_dim": 60, "depths": (2, 2), "num_heads": (2, 2)}


def _attn_mask_keys(depths: Sequence[int]) -> tuple[str, ...]:
    return tuple(f"layers.{i}.residual_group.blocks.{j}.attn_mask"
                 for i, depth in enumerate(depths) for j in range(1, depth, 2))


# -- adapter ----------------------------------------------------------------------------------------

@register_method("sr", tiles=True, tile_tolerance=5e-5, paper_order=4)
class SwinIR(SuperResolver):
    """SwinIR (classical SR) behind the harness convention; see the module docstring for the protocol.

    Tiling (`tile` > 0, or automatic on CUDA) is done here, on the padded image and on the window
    grid: the tile side is rounded down and the overlap up to multiples of the window size (8).
    """

    name: ClassVar[str] = "SwinIR"
    protocols: ClassVar[tuple[str, ...]] = PROTOCOLS  # exact and official
    # `main_test_swinir.py --tile T` is part of the release script: the official protocol tiles
    # when a tile is configured, as `test()` does (tiles averaged where they overlap).
    official_tiles: ClassVar[bool] = True
    # The base class would tile the unpadded image with tile origins off the window grid; SwinIR
    # tiles the padded image on the window grid inside `forward_protocol` instead.
    tiles_features: ClassVar[bool] = True
    configs: ClassVar[Mapping[str, Mapping]] = {"official": OFFICIAL, "small": SMALL}
    supports_bf16: ClassVar[bool] = True
    # Peak memory per network-input pixel, fp32: the official network's peak RSS growth on CPU
    # (one thread) over 64^2, 128^2 and 192^2 inputs is 14-15 KB per pixel at x2 and x4 (window
    # attention maps and their copies dominate); 20 KB leaves a margin.
    bytes_per_input_pixel: ClassVar[float] = 20_000.0
    # The stored shifted-window masks depend on the training patch size (64 or 48 in the released
    # files) and are recomputed for every other size anyway; the network derives them itself.
    ignored_keys: ClassVar[tuple[str, ...]] = _attn_mask_keys(OFFICIAL["depths"])

    # Input pixels shared by neighbouring tiles (seams at the middle, so 32 pixels of context on each
    # side). The official script's default is 32; with weights whose attention is not near-uniform
    # 32 left 2.6e-3 at the seams and 64 left 8e-6 (see tests/test_sr_swinir.py), hence 64.
    DEFAULT_TILE_OVERLAP: ClassVar[int] = 64
    # `main_test_swinir.py --tile_overlap` default, for the official protocol.
    OFFICIAL_TILE_OVERLAP: ClassVar[int] = 32

    def __init__(self, network: nn.Module, scale: int, *, tile_overlap: int | None = None, **runtime):
        if tile_overlap is None:
            official = runtime.get("protocol", EXACT) != EXACT
            tile_overlap = self.OFFICIAL_TILE_OVERLAP if official else self.DEFAULT_TILE_OVERLAP
        super().__init__(network, scale, tile_overlap=tile_overlap, **runtime)

    @classmethod
    def build_network(cls, scale: int, **config) -> nn.Module:
        return SwinIRNetwork(upscale=scale, **config)

    @classmethod
    def infer_scale(cls, weights: Mapping[str, torch.Tensor]) -> int | None:
        """From the pixel-shuffle convolutions `upsample.{0,2,...}.weight`: (4C, C) each for x2 steps,
        one (9C, C) for x3."""
        convs = sorted((int(k.split(".")[1]), v) for k, v in weights.items()
                       if k.startswith("upsample.") and k.endswith(".weight") and v.dim() == 4)
        if not convs:
            return None
        ratios = [v.shape[0] // v.shape[1] for _, v in convs]
        if ratios == [9]:
            return 3
        if all(r == 4 for r in ratios):
            return 2 ** len(ratios)
        return None

    def _window_tiling(self, lr: torch.Tensor) -> tuple[int, int]:
        """(tile, overlap) on the window grid for this input: tile rounded down, overlap up, to
        multiples of the window; tile 0 = no tiling."""
        window = self.network.window_size
        tile = self._tile_size(lr)
        if tile <= 0:
            return 0, 0
        tile = max(window, tile - tile % window)
        overlap = -(-self.tile_overlap // window) * window
        if overlap >= tile:
            raise ValueError(f"{self.name}: tile_overlap {self.tile_overlap} (rounded to {overlap}) must be smaller "
                             f"than the tile {tile} (both on the {window}-pixel window grid)")
        return tile, overlap

    def forward_protocol(self, lr: torch.Tensor) -> torch.Tensor:
        """`main_test_swinir.py`: symmetric padding to the next multiple of the window strictly above
        the size, the network (whole, or tile by tile on the padded image), crop to scale * size."""
        height, width = lr.shape[-2:]
        if min(height, width) < 3:
            raise ValueError(f"{self.name}: the official padding needs at least 3x3 input pixels, got {height}x{width}")
        x = self.pad_to_window(lr, self.network.window_size)
        tile, overlap = self._window_tiling(lr)
        out = tiled_apply(self.network, x, self.scale, tile, overlap)
        return out[..., :height * self.scale, :width * self.scale]

    @staticmethod
    def pad_to_window(lr: torch.Tensor, window: int) -> torch.Tensor:
        """`main_test_swinir.py`'s padding: flipped copies to the next multiple of `window` strictly
        above each side."""
        height, width = lr.shape[-2:]
        pad_h = (height // window + 1) * window - height
        pad_w = (width // window + 1) * window - width
        x = torch.cat([lr, lr.flip(-2)], -2)[..., :height + pad_h, :]
        return torch.cat([x, x.flip(-1)], -1)[..., :width + pad_w]

    def averaged_tiles(self, x: torch.Tensor) -> torch.Tensor:
        """`main_test_swinir.py`'s `test()` with `--tile`: tiles of `min(tile, H, W)` every
        `tile - tile_overlap` pixels (the last flush with the border), outputs summed and divided by
        the number of tiles covering each pixel."""
        height, width = x.shape[-2:]
        tile = min(self.tile, height, width)
        window = self.network.window_size
        if tile % window:
            raise ValueError(f"{self.name}: the official protocol's tile must be a multiple of the window size "
                             f"{window} (`main_test_swinir.py` asserts it of min(tile, padded height, width)), "
                             f"got {tile}")
        stride = tile - self.tile_overlap
        if stride <= 0:
            raise ValueError(f"{self.name}: tile_overlap {self.tile_overlap} must be smaller than the tile {tile}")
        rows = list(range(0, height - tile, stride)) + [height - tile]
        cols = list(range(0, width - tile, stride)) + [width - tile]
        s = self.scale
        total = x.new_zeros(x.shape[0], x.shape[1], height * s, width * s)
        count = torch.zeros_like(total)
        for top in rows:
            for left in cols:
                piece = self.network(x[..., top:top + tile, left:left + tile])
                total[..., top * s:(top + tile) * s, left * s:(left + tile) * s].add_(piece)
                count[..., top * s:(top + tile) * s, left * s:(left + tile) * s].add_(torch.ones_like(piece))
        return total.div_(count)

    def forward_official(self, lr: torch.Tensor) -> torch.Tensor:
        """`main_test_swinir.py`: the padding, `test()` (whole, or averaged tiles with `--tile`), the crop."""
        height, width = lr.shape[-2:]
        if min(height, width) < 3:
            raise ValueError(f"{self.name}: the official padding needs at least 3x3 input pixels, got {height}x{width}")
        x = self.pad_to_window(lr, self.network.window_size)
        out = self.averaged_tiles(x) if self.tile > 0 else self.network(x)
        return out[..., :height * self.scale, :width * self.scale]
