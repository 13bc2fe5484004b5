"""CFANet: coupled feedback attention network for joint exposure fusion and super-resolution.

The proposed network (spec: ../shared/reference/cfanet.md) is CF-Net (Deng et al., TIP 2021;
`baselines/joint/cfnet.py`) with channel attention in every coupled feedback iteration. It is
built from CF-Net's blocks (`cfanet/feedback.py`). Per branch b in {o (over), u (under)}:

1. feature extraction (FEB): `F_in^b = PReLU(Conv1x1(PReLU(Conv3x3(I_lr^b))))`, 3 -> 4m -> m;
2. SR block: `G_0^b = SRB(F_in^b)`, CF-Net's N-group projection body;
3. channel attention (CA) on the SRB output: `C_0^b = G_0^b * (s_0^b + 1)`;
4. coupled feedback attention blocks (CFAB), t = 1..T, both branches from iteration t - 1 only:
   `G_t^b = CFB_t^b(F_in^b, X_{t-1}^b, X_{t-1}^other)` (CF-Net's CFB: a 1x1 compression of the
   three maps, the projection body, the other branch's feedback re-injected after group 3),
   `s_t^b = sigmoid(W2 relu(W1 GAP(G_t^b)))` and the recalibration
   `C_t = G_t * (s_t + 1)` at t = 1, `C_t = G_t * s_{t-1} + G_t * (s_t + 1)` for t > 1;
   `X_t` (what iteration t + 1 reads) is `C_t` by default, `G_t` with `feedback="raw"`;
5. reconstruction per output: `I_t^b = REC_t^b(C_t^b) + Up(I_lr^b)`, t = 0..T, REC = scale-kernel
   deconvolution with PReLU then Conv3x3 m -> 3, `Up` = bilinear (`align_corners=False`), clamped
   to [-1, 1] and mapped to [0, 255] as CF-Net does;
6. fused image: `0.5 * I_T^o + 0.5 * I_T^u` (CF-Net).

Choices where the paper is silent or ambiguous (each a field of `CFANetConfig`):

| option | default | source | alternative |
| --- | --- | --- | --- |
| `num_features`, `num_groups`, `num_iterations` | 64, 6, 3 | CF-Net | "small": 16, 3, 2 |
| `reduction` (CA bottleneck m -> m / r) | 16 | SE / RCAN (paper silent) | small config: 4 |
| `attention_bias` (W1, W2 with biases) | True | SE / RCAN (paper writes W only) | False |
| `share_attention` (one CA per branch for every t) | False | CF-Net (own blocks per iteration) | True |
| `attention` | True | paper | False: no CA anywhere (ablation) |
| `recalibration` | "paper" | paper (eq. above) | "current_only": `G_t * (s_t + 1)` for every t |
| `feedback` | "attended" (`C_t`) | paper's motivation | "raw" (`G_t`, its Sec. 2.1 notation) |
| `attend_srb_output` (`C_0`) | True | paper | False: REC_0 and iteration 1 read `G_0` |
| `under_first_activation` | True | paper (both FEBs alike) | False: CF-Net's quirk |
| `share_feature_extraction` | False | CF-Net (own FEB per branch) | True: the paper's single symbol |
| `re_guide` (after group 3) | True | CF-Net (paper silent) | False |
| `projection_kernel` | None (x2: 6/2/2, x4: 8/4/2) | CF-Net | 3: the paper's literal Deconv(3, m) |
| `channel_order` (of the trained weights) | "bgr" | CF-Net's protocol (OpenCV) | "rgb" |

More decisions, not options: the t = 1 recalibration has no previous term even when the SRB
output is attended (the paper's t = 1 formula; `s_0` is never a `s_{t-1}`); the attention
`s_{t-1}` of a branch is that branch's own; the re-injected guide is the same feature as the
feedback input (`X_{t-1}^other`); the under branch's feedback formula in the paper names
`F_in^o`, a typo: each branch reads its own `F_in`. The recalibration is computed literally as
`G*s_prev + G*(s+1)` (not `G*(s_prev+s+1)`, which rounds differently).

Reduction to CF-Net: with `attention=False, under_first_activation=False` (and the other CF-Net
defaults: `share_feature_extraction=False, re_guide=True, projection_kernel=None`), the network
performs exactly CF-Net's computation in CF-Net's order; `attention=False` removes every CA, so
`feedback`, `recalibration`, `attend_srb_output`, `reduction`, `attention_bias` and
`share_attention` have no effect then. `ABLATIONS["attention_off"]` is that set, and
`CFANetConfig.reduces_to_cfnet` says whether a configuration is it. CF-Net's state dict maps onto
ours by renaming only (`cfnet_to_cfanet_key`): `conv_in_over` -> `over.feb.conv_in`,
`feat_in_over` -> `over.feb.feat_in`, `srb_1` -> `over.srb`, `cfb_over{t}` -> `over.cfab.{t}`,
`out_over` / `conv_out_over` -> `over.rec.0.deconv` / `.conv`, `out_1.{t}` / `conv_out_1.{t}` ->
`over.rec.{t+1}.deconv` / `.conv`; the same for under with `srb_2`, `out_2`, `conv_out_2`.

Parameter names of our own: `over.*`, `under.*` per branch (`feb`, `srb`, `cfab.{t-1}`,
`attention.{t}` (t = 0 for the SRB output; key `all` when shared), `rec.{t}`), `feb.*` when the
FEB is shared.

Value convention (the adapter `CFANet`): harness images float32 RGB [0, 1]; the network reads
[-1, 1] in the configuration's `channel_order` (BGR by default, as CF-Net's protocol, so CF-Net's
official weights can initialise it and the attention-off configuration is CF-Net end to end) and
writes [0, 255], clamped. Checkpoints rebuild themselves from the entry
`"cfanet": {"scale": s, "config": CFANetConfig.to_dict()}` (`CFANet.describe()`): ours (`save`)
are `{"format": "cfanet", "version": 1, "cfanet": ..., "state_dict": ...}`, and any other container
(a trainer's) that carries the same entry at its top level or inside its `task` entry loads the
same way. Without that entry (a plain state dict, a container of another kind) the structure is
read from the weights (`infer_config`) and `recalibration`, `feedback`, `channel_order` take
their defaults.

Tiling: the channel attention pools over the whole image, so a tiled result is an approximation
(each tile has its own pooled statistics). The adapter never tiles on the CPU unless asked and,
on CUDA, only when the image does not fit in free memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cfanet.adapter import DeepMethod
from cfanet.checkpoint import CheckpointError, check_state_dict, read_checkpoint, unwrap_state_dict
from cfanet.feedback import (
    CFB,
    PEAK,
    PROJECTION,
    SRB,
    ConvBlock,
    DeconvBlock,
    check_pair,
    check_scale,
    reconstruct,
)
from cfanet.losses import CoupledLossWeights, coupled_ssim_loss, coupled_ssim_terms
from cfanet.methods import register_method
from cfanet.tiling import tiled_apply

# CF-Net re-injects the other branch's feedback after this projection group.
RE_GUIDE_AFTER = 3
CHECKPOINT_FORMAT = "cfanet"
CHECKPOINT_VERSION = 1


# -- configuration ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CFANetConfig:
    """Every structural and protocol option of CFANet (see the module docstring's table), validated
    on construction (ValueError). The defaults are the official configuration."""

    num_features: int = 64
    num_groups: int = 6
    num_iterations: int = 3
    reduction: int = 16
    attention: bool = True
    recalibration: str = "paper"
    feedback: str = "attended"
    attend_srb_output: bool = True
    attention_bias: bool = True
    share_attention: bool = False
    under_first_activation: bool = True
    share_feature_extraction: bool = False
    re_guide: bool = True
    projection_kernel: int | None = None
    channel_order: str = "bgr"

    RECALIBRATIONS: ClassVar[tuple[str, ...]] = ("paper", "current_only")
    FEEDBACKS: ClassVar[tuple[str, ...]] = ("attended", "raw")
    CHANNEL_ORDERS: ClassVar[tuple[str, ...]] = ("bgr", "rgb")

    def __post_init__(self):
        for name in ("num_features", "num_groups", "num_iterations", "reduction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CFANetConfig: {name} must be a positive integer, got {value!r}")
        for name in ("attention", "attend_srb_output", "attention_bias", "share_attention",
                     "under_first_activation", "share_feature_extraction", "re_guide"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"CFANetConfig: {name} must be True or False, got {getattr(self, name)!r}")
        for name, allowed in (("recalibration", self.RECALIBRATIONS), ("feedback", self.FEEDBACKS),
                              ("channel_order", self.CHANNEL_ORDERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"CFANetConfig: {name} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if self.projection_kernel not in (None, 3):
            raise ValueError(f"CFANetConfig: projection_kernel must be None (CF-Net's) or 3, "
                             f"got {self.projection_kernel!r}")
        if self.re_guide and self.num_groups < RE_GUIDE_AFTER:
            raise ValueError(f"CFANetConfig: re_guide (after group {RE_GUIDE_AFTER}) needs num_groups >= "
                             f"{RE_GUIDE_AFTER}, got {self.num_groups}")
        if self.share_feature_extraction and not self.under_first_activation:
            raise ValueError("CFANetConfig: a shared feature extraction has the activation in both branches; "
                             "under_first_activation=False needs share_feature_extraction=False")

    @property
    def attention_hidden(self) -> int:
        """Channels of the CA bottleneck: `max(1, m // reduction)`."""
        return max(1, self.num_features // self.reduction)

    @property
    def attended_iterations(self) -> tuple[int, ...]:
        """The outputs t whose features pass through channel attention (0 = the SRB output)."""
        if not self.attention:
            return ()
        first = 0 if self.attend_srb_output else 1
        return tuple(range(first, self.num_iterations + 1))

    @property
    def reduces_to_cfnet(self) -> bool:
        """Whether this configuration computes exactly what CF-Net computes (same weights, same outputs)."""
        return (not self.attention and not self.under_first_activation and not self.share_feature_extraction
                and self.re_guide and self.projection_kernel is None)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (str, int, bool, None) only: safe in a `weights_only` checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "CFANetConfig":
        """The inverse of `to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"CFANetConfig: unknown options {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def named(cls, size: str = "official", ablation: str | None = None, **overrides) -> "CFANetConfig":
        """Configuration `size` of `CONFIGS`, with ablation `ablation` of `ABLATIONS` and `overrides`."""
        if size not in CONFIGS:
            raise ValueError(f"CFANet: unknown configuration {size!r}; known: {', '.join(CONFIGS)}")
        if ablation is not None and ablation not in ABLATIONS:
            raise ValueError(f"CFANet: unknown ablation {ablation!r}; known: {', '.join(ABLATIONS)}")
        return cls.from_dict({**CONFIGS[size], **(ABLATIONS[ablation] if ablation else {}), **overrides})


# Configurations as data. Official: CF-Net's sizes (64 features, 6 groups, 3 iterations), CA
# reduction 16. Small: the same code path, narrower, for the demo profile and the tests (the CA
# reduction 4 keeps a 4-channel bottleneck at 16 features).
CONFIGS: dict[str, dict[str, Any]] = {
    "official": {"num_features": 64, "num_groups": 6, "num_iterations": 3, "reduction": 16},
    "small": {"num_features": 16, "num_groups": 3, "num_iterations": 2, "reduction": 4},
}

# Ablations as overrides of a configuration. "attention_off" is CF-Net exactly (with CF-Net's
# under-branch quirk, so the comparison isolates the attention).
ABLATIONS: dict[str, dict[str, Any]] = {
    "attention_off": {"attention": False, "under_first_activation": False},
    "current_only": {"recalibration": "current_only"},
    "raw_feedback": {"feedback": "raw"},
    "no_srb_attention": {"attend_srb_output": False},
}


# -- blocks -----------------------------------------------------------------------------------------

class ChannelAttention(nn.Module):
    """`s = sigmoid(W2 relu(W1 GAP(G)))`: (N, m, h, w) -> (N, m, 1, 1) in (0, 1); W1, W2 are 1x1
    convolutions m -> hidden -> m."""

    def __init__(self, channels: int, hidden: int, bias: bool = True):
        super().__init__()
        self.w1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.w2 = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        pooled = g.mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.w2(torch.relu(self.w1(pooled))))


def recalibrate(g: torch.Tensor, s: torch.Tensor, s_prev: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's recalibration: `C = G * (s + 1)` without a previous attention (t = 1),
    `C = G * s_prev + G * (s + 1)` with one (t > 1). `s`, `s_prev` broadcast over G (N, m, 1, 1)."""
    current = g * (s + 1)
    return current if s_prev is None else g * s_prev + current


class FeatureExtraction(nn.Module):
    """FEB: Conv 3x3 (3 -> 4m) with PReLU (or none: CF-Net's under-branch quirk), Conv 1x1 (4m -> m) with PReLU."""

    def __init__(self, num_features: int, first_activation: bool = True, in_channels: int = 3):
        super().__init__()
        self.conv_in = ConvBlock(in_channels, 4 * num_features, kernel_size=3, activation=first_activation)
        self.feat_in = ConvBlock(4 * num_features, num_features, kernel_size=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.feat_in(self.conv_in(lr))


class Reconstruction(nn.Module):
    """REC: scale-kernel deconvolution m -> m with PReLU, Conv 3x3 m -> 3, plus the upsampled LR
    input, clamped to [-1, 1] and mapped to [0, 255] (`cfanet.feedback.reconstruct`)."""

    def __init__(self, num_features: int, scale: int, out_channels: int = 3):
        super().__init__()
        kernel_size, stride, padding = check_scale(scale)
        self.deconv = DeconvBlock(num_features, num_features, kernel_size, stride, padding)
        self.conv = ConvBlock(num_features, out_channels, kernel_size=3, activation=False)

    def forward(self, features: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        return reconstruct(features, self.deconv, self.conv, upsampled)


class Branch(nn.Module):
    """One exposure's modules: `feb` (absent when shared), `srb`, `cfab[t - 1]` for t = 1..T (CF-Net's
    CFB), `attention[str(t)]` (or `attention["all"]` when shared), `rec[t]` for t = 0..T."""

    def __init__(self, scale: int, config: CFANetConfig, first_activation: bool):
        super().__init__()
        m = config.num_features
        if not config.share_feature_extraction:
            self.feb = FeatureExtraction(m, first_activation)
        self.srb = SRB(m, config.num_groups, scale, projection_kernel=config.projection_kernel)
        re_guide_after = RE_GUIDE_AFTER if config.re_guide else None
        self.cfab = nn.ModuleList(CFB(m, config.num_groups, scale, re_guide_after, config.projection_kernel)
                                  for _ in range(config.num_iterations))
        keys = ["all"] if config.share_attention and config.attention else map(str, config.attended_iterations)
        self.attention = nn.ModuleDict({key: ChannelAttention(m, config.attention_hidden, config.attention_bias)
                                        for key in keys})
        self.rec = nn.ModuleList(Reconstruction(m, scale) for _ in range(config.num_iterations + 1))
        self.attended = frozenset(config.attended_iterations)

    def attention_at(self, t: int) -> ChannelAttention | None:
        """The CA applied to output t's features, None where there is none."""
        if t not in self.attended:
            return None
        return self.attention["all" if "all" in self.attention else str(t)]


# -- network ----------------------------------------------------------------------------------------

class CFANetNetwork(nn.Module):
    """The CFANet network for one scale (2 or 4) and one `CFANetConfig`.

    `forward(lr_over, lr_under)`: (N, 3, H, W) each on [-1, 1] (in the configuration's channel
    order) -> `(sr_over, sr_under)`, two lists of `num_iterations + 1` images (N, 3, scale*H,
    scale*W) on [0, 255], clamped: `I_0` (from the SRB) then one per coupled iteration. With
    `all_outputs=False` only `I_T` is reconstructed (one-item lists, the same values).
    """

    def __init__(self, scale: int, config: CFANetConfig | None = None):
        super().__init__()
        check_scale(scale)
        config = config or CFANetConfig()
        self.scale, self.config = scale, config
        if config.share_feature_extraction:
            self.feb = FeatureExtraction(config.num_features, first_activation=True)
        self.over = Branch(scale, config, first_activation=True)
        self.under = Branch(scale, config, first_activation=config.under_first_activation)

    def extract(self, branch: Branch, lr: torch.Tensor) -> torch.Tensor:
        feb = self.feb if self.config.share_feature_extraction else branch.feb
        return feb(lr)

    @staticmethod
    def attend(branch: Branch, t: int, g: torch.Tensor,
               s_prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(C_t, s_t)` of one branch: the recalibrated features and their attention (`(G_t, None)`
        where output t has no attention)."""
        attention = branch.attention_at(t)
        if attention is None:
            return g, None
        s = attention(g)
        return recalibrate(g, s, s_prev), s

    def forward(self, lr_over: torch.Tensor, lr_under: torch.Tensor,
                all_outputs: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        config, branches = self.config, (self.over, self.under)
        lrs = (lr_over, lr_under)
        up = [F.interpolate(lr, scale_factor=self.scale, mode="bilinear", align_corners=False) for lr in lrs]
        f_in = [self.extract(branch, lr) for branch, lr in zip(branches, lrs)]
        # t = 0: G_0 = SRB(F_in), C_0 = G_0 * (s_0 + 1); s_0 never enters a later recalibration.
        g = [branch.srb(f) for branch, f in zip(branches, f_in)]
        c = [self.attend(branch, 0, g_b, None)[0] for branch, g_b in zip(branches, g)]
        features = [[c_b] for c_b in c]                      # what REC_t reads, per branch
        feedback = c if config.feedback == "attended" else g  # X_0
        s_prev: list[torch.Tensor | None] = [None, None]
        for t in range(1, config.num_iterations + 1):
            # Both branches read iteration t - 1 only (own, then the other branch's feedback).
            g = [branch.cfab[t - 1](f, feedback[i], feedback[1 - i])
                 for i, (branch, f) in enumerate(zip(branches, f_in))]
            attended = [self.attend(branch, t, g_b, s_b) for branch, g_b, s_b in zip(branches, g, s_prev)]
            c = [a[0] for a in attended]
            if config.recalibration == "paper":
                s_prev = [a[1] for a in attended]
            for i in range(2):
                features[i].append(c[i])
            feedback = c if config.feedback == "attended" else g
        keep = range(config.num_iterations + 1) if all_outputs else [config.num_iterations]
        sr_over, sr_under = ([branch.rec[t](features[i][t], up[i]) for t in keep]
                             for i, branch in enumerate(branches))
        return sr_over, sr_under


# -- state dicts ------------------------------------------------------------------------------------

_CFNET_RENAMES = (
    (r"conv_in_(over|under)\.", lambda m: f"{m[1]}.feb.conv_in."),
    (r"feat_in_(over|under)\.", lambda m: f"{m[1]}.feb.feat_in."),
    (r"srb_([12])\.", lambda m: f"{_BRANCH[m[1]]}.srb."),
    (r"cfb_(over|under)(\d+)\.", lambda m: f"{m[1]}.cfab.{m[2]}."),
    (r"out_(over|under)\.", lambda m: f"{m[1]}.rec.0.deconv."),
    (r"conv_out_(over|under)\.", lambda m: f"{m[1]}.rec.0.conv."),
    (r"out_([12])\.(\d+)\.", lambda m: f"{_BRANCH[m[1]]}.rec.{int(m[2]) + 1}.deconv."),
    (r"conv_out_([12])\.(\d+)\.", lambda m: f"{_BRANCH[m[1]]}.rec.{int(m[2]) + 1}.conv."),
)
_BRANCH = {"1": "over", "2": "under"}


def cfnet_to_cfanet_key(name: str) -> str:
    """The CFANet parameter name of a CF-Net (official layout) parameter name; ValueError if unknown."""
    for pattern, rename in _CFNET_RENAMES:
        match = re.match(pattern, name)
        if match:
            return rename(match) + name[match.end():]
    raise ValueError(f"not a CF-Net parameter name: {name!r}")


def cfnet_state_dict_to_cfanet(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CF-Net's state dict renamed to CFANet's names (values untouched)."""
    return {cfnet_to_cfanet_key(name): value for name, value in weights.items()}


def infer_config(weights: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What a CFANet state dict tells of its configuration: `scale` and the structural options
    (`num_features`, `num_groups`, `num_iterations`, `reduction`, `attention`, `attend_srb_output`,
    `attention_bias`, `share_attention`, `under_first_activation`, `share_feature_extraction`,
    `re_guide`, `projection_kernel`). `recalibration`, `feedback` and `channel_order` leave no
    trace in the weights and are not returned; entries that cannot be read are left out."""
    found: dict[str, Any] = {}
    deconv = weights.get("over.rec.0.deconv.0.weight")
    by_kernel = {kernel: scale for scale, (kernel, _stride, _pad) in PROJECTION.items()}
    if deconv is not None and deconv.dim() == 4 and int(deconv.shape[-1]) in by_kernel:
        found["scale"] = by_kernel[int(deconv.shape[-1])]
    compress = weights.get("over.srb.compress_in.0.weight")
    if compress is not None and compress.dim() == 4:
        found["num_features"] = int(compress.shape[0])
    groups = sum(1 for k in weights if re.fullmatch(r"over\.srb\.upBlocks\.\d+\.0\.weight", k))
    if groups:
        found["num_groups"] = groups
        up = weights["over.srb.upBlocks.0.0.weight"]
        found["projection_kernel"] = 3 if up.dim() == 4 and int(up.shape[-1]) == 3 else None
    iterations = sum(1 for k in weights if re.fullmatch(r"over\.cfab\.\d+\.compress_in\.0\.weight", k))
    if iterations:
        found["num_iterations"] = iterations
        found["re_guide"] = "over.cfab.0.re_guide.0.weight" in weights
    w1 = {k: v for k, v in weights.items() if re.fullmatch(r"over\.attention\.\w+\.w1\.weight", k)}
    found["attention"] = bool(w1)
    if w1:
        found["share_attention"] = "over.attention.all.w1.weight" in w1
        if not found["share_attention"]:
            found["attend_srb_output"] = "over.attention.0.w1.weight" in w1
        hidden = int(next(iter(w1.values())).shape[0])
        if "num_features" in found and found["num_features"] % hidden == 0:
            found["reduction"] = found["num_features"] // hidden
        found["attention_bias"] = any(re.fullmatch(r"over\.attention\.\w+\.w1\.bias", k) for k in weights)
    found["share_feature_extraction"] = "feb.conv_in.0.weight" in weights
    if not found["share_feature_extraction"]:
        found["under_first_activation"] = "under.feb.conv_in.1.weight" in weights
    return found


# -- adapter ----------------------------------------------------------------------------------------

def _field(batch, name: str):
    value = batch.get(name) if isinstance(batch, Mapping) else getattr(batch, name, None)
    if value is None:
        raise ValueError(f"CFANet.loss: the batch has no {name!r} (needs over, under, gt, gt_over, gt_under)")
    return value


@register_method("joint", tiles=True, tile_tolerance=2e-2, paper_order=2, proposed=True,
                 note="the proposed method; tiles change its attention statistics (pooled per tile)")
class CFANet(DeepMethod):
    """CFANet behind the harness convention: `fuse_upscale(over, under)` takes two float32 RGB
    (N, 3, H, W) LR exposures in [0, 1] and returns the fused HR image, float32 RGB
    (N, 3, scale*H, scale*W) in [0, 1], on the inputs' device.

    Protocol (CF-Net's, see the module docstring): RGB -> the configuration's channel order,
    `(x - 0.5) / 0.5`, network, fused = `0.5 * I_T^o + 0.5 * I_T^u` on [0, 255], back to RGB.
    `output_mode`: "round" (default: to the nearest 8-bit level, half up, like every stage
    output) or "float" (the fused values / 255, unquantised).

    Runtime options: `device`; `tile` (LR pixels per tile side; 0 = whole image on CPU and chosen
    from free memory on CUDA; -1 = never tile; tiles change the attention statistics, see the
    module docstring) and `tile_overlap`; `precision` ("fp32" or "bf16": autocast of the forward
    pass on the device); `channels_last` (memory format of the network and its inputs);
    `loss_weights` (`CoupledLossWeights` of the hierarchical loss; default all 1, the paper's).
    `protocol`: "exact" only. CFANet has no release script (no official protocol): under a
    profile-wide "official" protocol it runs exact, and the reports say so.
    """

    name: ClassVar[str] = "CFANet"
    # Inference autocast dtypes that change PSNR by < 0.05 dB on the demo scenes (tests/test_autocast.py).
    autocast_dtypes: ClassVar[tuple[str, ...]] = ("bf16", "fp16")
    configs: ClassVar[Mapping[str, Mapping]] = CONFIGS
    ablations: ClassVar[Mapping[str, Mapping]] = ABLATIONS
    output_modes: ClassVar[tuple[str, ...]] = ("round", "float")
    # CF-Net's measured peak (fp32, no grad) per LR pixel of the pair; the attention adds only
    # (N, m, 1, 1) tensors.
    bytes_per_input_pixel: ClassVar[float] = 100_000.0
    default_tile_overlap: ClassVar[int] = 32

    def __init__(self, network: CFANetNetwork, scale: int | None = None, *, device: str | torch.device = "cpu",
                 output_mode: str = "round", tile: int = 0, tile_overlap: int | None = None,
                 precision: str = "fp32", channels_last: bool = False, protocol: str = "exact",
                 loss_weights: CoupledLossWeights | None = None, weights: str = "random init"):
        if output_mode not in self.output_modes:
            raise ValueError(f"{self.name}: output_mode must be one of {', '.join(self.output_modes)}, "
                             f"got {output_mode!r}")
        scale = network.scale if scale is None else scale
        if scale != network.scale:
            raise ValueError(f"{self.name}: scale {scale} does not match the network's x{network.scale}")
        self._setup(network, device=device, tile=tile, tile_overlap=tile_overlap, precision=precision,
                    channels_last=channels_last, protocol=protocol)
        self.scale, self.output_mode = scale, output_mode
        self.loss_weights = loss_weights or CoupledLossWeights()
        self.weights = weights

    @property
    def config(self) -> CFANetConfig:
        return self.network.config

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def split_options(cls, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """`(config overrides, runtime options)`: the keys that are `CFANetConfig` fields, the rest."""
        names = {f.name for f in fields(CFANetConfig)}
        return ({k: v for k, v in options.items() if k in names},
                {k: v for k, v in options.items() if k not in names})

    @classmethod
    def create(cls, scale: int, size: str = "official", seed: int | None = 0, ablation: str | None = None,
               **options) -> "CFANet":
        """A model of configuration `size` ("official" or "small"), optionally with an ablation of
        `ABLATIONS`, with seeded PyTorch default initialisation (as CF-Net's training script).
        `options` are `CFANetConfig` fields (overrides) and runtime options of the constructor."""
        overrides, runtime = cls.split_options(options)
        config = CFANetConfig.named(size, ablation, **overrides)
        if seed is not None:
            torch.manual_seed(seed)
        return cls(CFANetNetwork(scale, config), scale, **runtime)

    @classmethod
    def from_checkpoint(cls, path: str | Path, scale: int | None = None, key: str | None = None,
                        **runtime) -> "CFANet":
        """Load a CFANet checkpoint strictly: ours (`save`), any container with a `"cfanet"`
        description (see the module docstring; e.g. a trainer's `{"model": state_dict, ...}`) or a
        plain state dict.

        With a description the configuration is rebuilt exactly; without one, the scale and the
        structure come from `infer_config` and the other options take their defaults. `scale`, if
        given, must agree. Official CF-Net files are refused with a pointer to `from_cfnet_checkpoint`.
        """
        source = str(path)
        obj = read_checkpoint(path)
        weights = unwrap_state_dict(obj, key=key, source=source)
        if "conv_in_over.0.weight" in weights:
            raise CheckpointError(f"{source}: this is a CF-Net checkpoint (official layout); load it with "
                                  f"CFANet.from_cfnet_checkpoint or baselines.joint.cfnet.CFNet")
        inferred = infer_config(weights)
        stored_scale = inferred.pop("scale", None)
        description = cls._description(obj)
        if description is not None:
            try:
                config = CFANetConfig.from_dict(description["config"])
                stored_scale = int(description["scale"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{source}: its CFANet configuration is not valid: {exc!r}") from exc
        else:
            config = CFANetConfig.from_dict({**CONFIGS["official"], **inferred})
        if scale is None:
            if stored_scale is None:
                raise CheckpointError(f"{source}: cannot tell the scale of this {cls.name} checkpoint; pass scale")
            scale = stored_scale
        elif stored_scale is not None and stored_scale != scale:
            raise CheckpointError(f"{source}: this is an x{stored_scale} {cls.name} checkpoint, "
                                  f"but x{scale} was asked for")
        network = CFANetNetwork(scale, config)
        check_state_dict(network.state_dict(), weights, source=source)
        network.load_state_dict(weights, strict=True)
        return cls(network, scale, weights=source, **runtime)

    @classmethod
    def from_cfnet_checkpoint(cls, path: str | Path, scale: int | None = None, ablation: str | None = None,
                              **options) -> "CFANet":
        """A CFANet initialised from a CF-Net checkpoint (official `{"model": ...}` file or state dict).

        The sizes (m, N, T) and the scale come from the file; `ablation` and `options` as in
        `create`. Every CF-Net weight must land on a CFANet parameter of the same shape; the
        parameters CF-Net lacks (the channel attention, the under branch's first PReLU) keep their
        seeded initialisation (`seed`, default 0). With a configuration that `reduces_to_cfnet`
        the load is strict both ways and the model computes exactly what CF-Net computes.
        """
        source = str(path)
        weights = unwrap_state_dict(read_checkpoint(path), source=source)
        seed = options.pop("seed", 0)
        overrides, runtime = cls.split_options(options)
        deconv = weights.get("out_over.0.weight")
        by_kernel = {kernel: s for s, (kernel, _stride, _pad) in PROJECTION.items()}
        inferred = by_kernel.get(int(deconv.shape[-1])) if deconv is not None and deconv.dim() == 4 else None
        if scale is None:
            if inferred is None:
                raise CheckpointError(f"{source}: cannot tell the scale of this CF-Net checkpoint; pass scale")
            scale = inferred
        elif inferred is not None and inferred != scale:
            raise CheckpointError(f"{source}: this is an x{inferred} CF-Net checkpoint, but x{scale} was asked for")
        try:
            renamed = cfnet_state_dict_to_cfanet(weights)
        except ValueError as exc:
            raise CheckpointError(f"{source}: {exc}") from exc
        sizes = {k: v for k, v in infer_config(renamed).items()
                 if k in ("num_features", "num_groups", "num_iterations", "re_guide")}
        config = CFANetConfig.named("official", ablation, **{**sizes, **overrides})
        if seed is not None:
            torch.manual_seed(seed)
        if config.share_feature_extraction:
            raise ValueError(f"{cls.name}: CF-Net has one feature extraction per branch; "
                             f"share_feature_extraction=True cannot be initialised from it")
        network = CFANetNetwork(scale, config)
        # CF-Net provides everything except the attention and the under branch's first PReLU.
        provided = {k: v for k, v in network.state_dict().items()
                    if ".attention." not in k and k != "under.feb.conv_in.1.weight"}
        check_state_dict(provided, renamed, source=source)
        network.load_state_dict(renamed, strict=config.reduces_to_cfnet)
        return cls(network, scale, weights=source, **runtime)

    @staticmethod
    def _description(obj) -> Mapping | None:
        """The `"cfanet"` entry of a checkpoint container (top level, or inside its `task` entry)."""
        if not isinstance(obj, Mapping):
            return None
        for holder in (obj, obj.get("task")):
            if isinstance(holder, Mapping) and isinstance(holder.get(CHECKPOINT_FORMAT), Mapping):
                return holder[CHECKPOINT_FORMAT]
        return None

    def describe(self) -> dict[str, Any]:
        """What rebuilds this model: `{"scale": s, "config": CFANetConfig.to_dict()}` (plain values).
        Store it under the key "cfanet" of any checkpoint container for `from_checkpoint` to use."""
        return {"scale": self.scale, "config": self.config.to_dict()}

    def checkpoint(self, **extra) -> dict[str, Any]:
        """Our checkpoint container: format, version, `"cfanet": describe()` and the state dict (on
        the CPU), plus `extra` entries (plain values only, so `weights_only` loading admits them)."""
        state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in self.network.state_dict().items()}
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, CHECKPOINT_FORMAT: self.describe(),
                "state_dict": state, **extra}

    def save(self, path: str | Path, **extra) -> Path:
        """Write `checkpoint(**extra)` to `path` (atomically: a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(self.checkpoint(**extra), partial)
        partial.replace(path)
        return path

    # -- conventions ------------------------------------------------------------------------------

    def to_network(self, rgb: torch.Tensor) -> torch.Tensor:
        """Harness RGB [0, 1] -> the network's [-1, 1] in the configuration's channel order."""
        x = rgb.flip(1) if self.config.channel_order == "bgr" else rgb
        x = (x - 0.5) / 0.5
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def from_network(self, image_255: torch.Tensor) -> torch.Tensor:
        """The network's [0, 255] (its channel order) -> harness float32 RGB [0, 1] (not quantised)."""
        x = image_255.flip(1) if self.config.channel_order == "bgr" else image_255
        return x.float() / PEAK

    # -- inference and training -------------------------------------------------------------------

    def iteration_outputs(self, over: torch.Tensor,
                          under: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every output for training: `(outputs_over, outputs_under)`, each `num_iterations + 1`
        float32 RGB (N, 3, scale*H, scale*W) images in [0, 1] (`I_0`, then one per iteration),
        differentiable, on the network's device; inputs as for `fuse_upscale`. The network's
        training mode is left as it is; `precision="bf16"` autocasts the forward pass."""
        check_pair(over, under, self.name)
        with self._autocast():
            sr_over, sr_under = self.network(self.to_network(over.to(self.device, torch.float32)),
                                             self.to_network(under.to(self.device, torch.float32)))
        return [self.from_network(x) for x in sr_over], [self.from_network(x) for x in sr_under]

    def loss_terms(self, batch) -> dict[str, torch.Tensor]:
        """The unweighted `1 - SSIM` terms of the hierarchical loss by name ("over_0", "under_0",
        "over_t", "under_t"), see `loss`."""
        outputs_over, outputs_under = self.iteration_outputs(_field(batch, "over"), _field(batch, "under"))
        targets = [_field(batch, k).to(self.device, torch.float32) for k in ("gt_over", "gt_under", "gt")]
        return coupled_ssim_terms(outputs_over, outputs_under, *targets, data_range=1.0)

    def loss(self, batch, weights: CoupledLossWeights | None = None) -> torch.Tensor:
        """The paper's hierarchical SSIM loss (Sec. 2.3) of one batch, a differentiable scalar:

            L = lo (1 - SSIM(I_0^o, gt_over)) + lu (1 - SSIM(I_0^u, gt_under))
                + sum_t lt [(1 - SSIM(I_t^o, gt)) + (1 - SSIM(I_t^u, gt))]

        `batch`: a mapping or an object (e.g. `cfanet.data.scene.Scene`) with `over`, `under`
        (LR, float RGB [0, 1]), `gt`, `gt_over`, `gt_under` (HR, the same convention; HR sides at
        least 7). SSIM as CF-Net's (`cfanet.losses.ssim`: window 7, sigma 1.5, clipped at 0) on
        [0, 1] with data range 1, which equals CF-Net's on [0, 255] with 255 up to rounding.
        `weights`: the lambdas (default: this model's `loss_weights`, all 1 as in the paper).
        """
        outputs_over, outputs_under = self.iteration_outputs(_field(batch, "over"), _field(batch, "under"))
        gt_over, gt_under, gt = (_field(batch, k).to(self.device, torch.float32) for k in ("gt_over", "gt_under", "gt"))
        return coupled_ssim_loss(outputs_over, outputs_under, gt_over, gt_under, gt,
                                 weights or self.loss_weights, data_range=1.0)

    def fused_255(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """The fused image `0.5 * I_T^o + 0.5 * I_T^u` on [0, 255] as float32 RGB, before any
        quantisation; inputs harness RGB on the model's device."""
        with self._autocast():
            sr_over, sr_under = self.network(self.to_network(over), self.to_network(under), all_outputs=False)
        fused = 0.5 * sr_over[-1].float() + 0.5 * sr_under[-1].float()
        return fused.flip(1) if self.config.channel_order == "bgr" else fused

    @torch.no_grad()
    def fuse_upscale(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """float32 RGB (N, 3, H, W) LR exposures in [0, 1] -> the fused float32 RGB
        (N, 3, scale*H, scale*W) in [0, 1], on `over`'s device; quantised as `output_mode` says."""
        check_pair(over, under, self.name)
        pair = torch.cat((over, under), dim=1).to(self.device, torch.float32)
        was_training = self.network.training
        self.network.eval()
        try:
            fused = tiled_apply(lambda x: self.fused_255(x[:, :3], x[:, 3:]), pair, self.scale,
                                self._tile_size(pair), self.tile_overlap)
        finally:
            self.network.train(was_training)
        if self.output_mode == "round":
            fused = torch.floor(fused.clamp(0.0, PEAK) + 0.5)
        return (fused / PEAK).clamp_(0.0, 1.0).contiguous().to(over.device)


__all__ = [
    "ABLATIONS", "CONFIGS", "CFANet", "CFANetConfig", "CFANetNetwork", "ChannelAttention", "FeatureExtraction",
    "Reconstruction", "cfnet_state_dict_to_cfanet", "cfnet_to_cfanet_key", "infer_config", "recalibrate",
]
