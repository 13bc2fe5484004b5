"""Coupled feedback building blocks shared by CF-Net (`baselines/joint/cfnet.py`) and CFANet
(`cfanet/network.py`).

These are the blocks of ytZhang99/CF-Net `model.py` with the official parameter names (the
official `ConvBlock`/`DeconvBlock` with `norm_type=None`, the projection body of its `SRB` and
`CFB`, the reconstruction), so a module built from them loads the official checkpoints strictly.
They live in the foundation layer because the proposed network extends CF-Net: `baselines/`
imports them from here (and re-exports them under their old names), `cfanet/` never imports
from `baselines/`.

Projection geometry: CF-Net's up/down projections use a kernel, stride and padding that depend
on the scale (`PROJECTION`, the only two scales the official code knows). `projection_geometry`
also gives the literal reading of the CFANet paper's `Deconv(3, m)` / `Conv(3, m)` (kernel 3,
stride = scale, an output padding that makes the sizes exact), which CFANet offers as an option.
With either geometry any LR size works (odd ones included): the deconvolution gives exactly
`scale * size` and the strided convolution brings it back.
"""

from __future__ import annotations

import torch
from torch import nn

# Up/down projection geometry per scale: (kernel_size, stride, padding), as in the official code.
PROJECTION = {2: (6, 2, 2), 4: (8, 4, 2)}

# The PReLU initial slope of the official `activation` helper (`slope=0.2`).
PRELU_INIT = 0.2

# Official output range of the network: images on [0, 255] (from [-1, 1] via `(x + 1) * 127.5`).
PEAK = 255.0


class ConvBlock(nn.Sequential):
    """Convolution followed by PReLU (or nothing): the official `ConvBlock` with `norm_type=None`,
    whose entries are `<name>.0.*` (conv) and `<name>.1.weight` (PReLU, one slope).

    `padding=None` keeps the spatial size for odd kernels (the official "valid padding", (k - 1) // 2).
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
    """Transposed convolution followed by PReLU: the official `DeconvBlock` with `norm_type=None`.
    (`output_padding` is 0 in CF-Net; the kernel-3 projection geometry needs it.)"""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 output_padding: int = 0):
        super().__init__(nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                            output_padding=output_padding),
                         nn.PReLU(num_parameters=1, init=PRELU_INIT))


def check_scale(scale: int) -> tuple[int, int, int]:
    """(kernel_size, stride, padding) of the projections for `scale`; ValueError for other scales."""
    if scale not in PROJECTION:
        raise ValueError(f"the CF-Net projections support scales {sorted(PROJECTION)}, got {scale}")
    return PROJECTION[scale]


def projection_geometry(scale: int, kernel_size: int | None = None) -> tuple[int, int, int, int]:
    """(kernel_size, stride, padding, output_padding) of the up/down projections at `scale`.

    `kernel_size=None`: CF-Net's scale-dependent geometry (`PROJECTION`, output padding 0).
    `kernel_size=3`: kernel 3, stride `scale`, padding 1, output padding `scale - 1`, so the
    deconvolution maps h -> scale*h and the strided convolution maps scale*h -> h exactly.
    (At x4 a kernel-3, stride-4 deconvolution reaches only 3 of every 4 output rows and columns
    from the bias-free part: the "checkerboard" the scale-dependent kernels avoid.)
    """
    kernel, stride, padding = check_scale(scale)
    if kernel_size is None:
        return kernel, stride, padding, 0
    if kernel_size != 3:
        raise ValueError(f"projection kernel must be None (CF-Net's) or 3 (the paper's literal Conv(3, m)), "
                         f"got {kernel_size}")
    return 3, scale, 1, scale - 1


class ProjectionGroups(nn.Module):
    """The projection body shared by the SRB and the CFB (the feedback block of SRFBN, paper Sec. III-B).

    `compress_in` (1x1, `in_channels` -> m) gives `L_0`; group g = 1..N computes
    `H_g = up_g(T([L_0, ..., L_{g-1}]))` and `L_g = down_g(T([H_1, ..., H_g]))`, where T is the
    group's 1x1 transition (`uptranBlocks` / `downtranBlocks`, absent for g = 1); the output is
    `compress_out([L_1, ..., L_N])` (m features at LR). With `re_guide_after = k`, the LR output of
    group k is replaced by `re_guide([L_k, guide])` before later groups read it (CF-Net's CFB, k = 3).

    Parameter names and creation order are the official ones (`re_guide` is created before the
    groups, registered after them), so seeded initialisations agree with the official module.
    `projection_kernel` chooses the geometry (`projection_geometry`; None = CF-Net's).
    """

    def __init__(self, in_channels: int, num_features: int, num_groups: int, scale: int,
                 re_guide_after: int | None = None, projection_kernel: int | None = None):
        super().__init__()
        kernel_size, stride, padding, output_padding = projection_geometry(scale, projection_kernel)
        if num_groups < 1:
            raise ValueError(f"CF-Net needs at least one projection group, got {num_groups}")
        if re_guide_after is not None and not 1 <= re_guide_after <= num_groups:
            raise ValueError(f"re_guide_after={re_guide_after} needs 1 <= it <= num_groups ({num_groups})")
        m = num_features
        self.num_groups, self.re_guide_after = num_groups, re_guide_after
        self.compress_in = ConvBlock(in_channels, m, kernel_size=1)
        self.upBlocks = nn.ModuleList()
        self.downBlocks = nn.ModuleList()
        self.uptranBlocks = nn.ModuleList()
        self.downtranBlocks = nn.ModuleList()
        if re_guide_after is not None:
            self.re_guide = ConvBlock(2 * m, m, kernel_size=1)
        for g in range(num_groups):
            self.upBlocks.append(DeconvBlock(m, m, kernel_size, stride, padding, output_padding))
            self.downBlocks.append(ConvBlock(m, m, kernel_size, stride=stride, padding=padding))
            if g > 0:
                self.uptranBlocks.append(ConvBlock(m * (g + 1), m, kernel_size=1))
                self.downtranBlocks.append(ConvBlock(m * (g + 1), m, kernel_size=1))
        self.compress_out = ConvBlock(num_groups * m, m, kernel_size=1)

    def project(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        """(N, in_channels, h, w) [and the guide (N, m, h, w)] -> (N, m, h, w)."""
        low = [self.compress_in(x)]   # L_0
        high = []
        for g in range(self.num_groups):
            lr_in = torch.cat(low, dim=1)
            if g > 0:
                lr_in = self.uptranBlocks[g - 1](lr_in)
            high.append(self.upBlocks[g](lr_in))
            hr_in = torch.cat(high, dim=1)
            if g > 0:
                hr_in = self.downtranBlocks[g - 1](hr_in)
            lr_out = self.downBlocks[g](hr_in)
            if self.re_guide_after is not None and g + 1 == self.re_guide_after:
                lr_out = self.re_guide(torch.cat((lr_out, guide), dim=1))
            low.append(lr_out)
        return self.compress_out(torch.cat(low[1:], dim=1))   # L_0 is left out


class SRB(ProjectionGroups):
    """Super-resolution block: `G_0 = SRB(F_in)`, m features in and out (official `SRB`)."""

    def __init__(self, num_features: int, num_groups: int, scale: int, projection_kernel: int | None = None):
        super().__init__(num_features, num_features, num_groups, scale, projection_kernel=projection_kernel)

    def forward(self, f_in: torch.Tensor) -> torch.Tensor:
        return self.project(f_in)


class CFB(ProjectionGroups):
    """Coupled feedback block: `G_t = CFB(F_in, G_{t-1}^own, G_{t-1}^other)` (official `CFB`).

    The input is the 1x1 compression of the three concatenated feature maps (3m -> m); with
    `re_guide_after` (CF-Net: 3; None drops it) the other branch's feedback is injected again
    after that group.
    """

    def __init__(self, num_features: int, num_groups: int, scale: int, re_guide_after: int | None = 3,
                 projection_kernel: int | None = None):
        super().__init__(3 * num_features, num_features, num_groups, scale, re_guide_after, projection_kernel)

    def forward(self, f_in: torch.Tensor, g_own: torch.Tensor, g_other: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat((f_in, g_own, g_other), dim=1), guide=g_other)


def reconstruct(features: torch.Tensor, deconv: nn.Module, conv: nn.Module, upsampled: torch.Tensor) -> torch.Tensor:
    """REC: `clamp(conv(deconv(G)) + Up(I_lr), -1, 1)` mapped to [0, 255] (official `CFNet.forward`)."""
    image = torch.clamp(conv(deconv(features)) + upsampled, -1.0, 1.0)
    return (image + 1) * 127.5


def check_pair(over: torch.Tensor, under: torch.Tensor, name: str = "joint method") -> None:
    """Raise ValueError naming the problem unless over/under are equal-shaped float (N, 3, H, W) tensors
    (the harness convention every joint method's adapter checks at its boundary)."""
    for role, image in (("over", over), ("under", under)):
        if not isinstance(image, torch.Tensor):
            raise ValueError(f"{name}: {role} must be a torch tensor (N, 3, H, W), got {type(image).__name__}")
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"{name}: {role} must be shaped (N, 3, H, W) RGB, got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"{name}: {role} must be float RGB in [0, 1], got {image.dtype}")
        if image.shape[0] == 0 or image.shape[2] == 0 or image.shape[3] == 0:
            raise ValueError(f"{name}: {role} is empty, shape {tuple(image.shape)}")
        if not torch.isfinite(image).all():
            raise ValueError(f"{name}: {role} holds NaN or infinite values")
    if over.shape != under.shape:
        raise ValueError(f"{name}: over and under differ in shape: {tuple(over.shape)} vs {tuple(under.shape)}")
