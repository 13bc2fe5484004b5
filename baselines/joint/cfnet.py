"""CF-Net: Deep Coupled Feedback Network for Joint Exposure Fusion and Image Super-Resolution
(Deng, Zhang, Xu, Gu, Duan, IEEE TIP 2021).

Re-implementation of ytZhang99/CF-Net `model.py` (`CFNet`, `SRB`, `CFB`) with the official
parameter names, so the released `model/model_x2.pth` / `model_x4.pth` load strictly.

The network (paper Fig. 2), one branch per exposure (o = over-exposed, u = under-exposed):

- feature extraction (FEB): 3x3 conv to 4m features, 1x1 conv to m, PReLU after each
  (`conv_in_*`, `feat_in_*`). Official quirk kept: the under branch's 3x3 conv has **no**
  activation (`conv_in_under` is built with `act_type=None`), so its entries are
  `conv_in_under.0.*` only;
- super-resolution block (SRB, `srb_1` / `srb_2`): a 1x1 compression, then N projection groups
  (deconvolution up to HR, strided convolution back to LR, each group densely fed by the earlier
  groups' outputs of the same resolution through 1x1 "transition" convolutions), then a 1x1
  compression of the N LR outputs: `G_0 = SRB(F_in)`;
- T coupled feedback blocks per branch (CFB, `cfb_over{t}` / `cfb_under{t}`): the same projection
  body on the 1x1 compression of `[F_in^own, G_{t-1}^own, G_{t-1}^other]`; after the third group
  the other branch's feedback `G_{t-1}^other` is re-injected (`re_guide`: 1x1 conv of
  `[L_3, G_{t-1}^other]`). Both branches of iteration t read iteration t-1 only;
- reconstruction (REC) per output: deconvolution with PReLU (`out_over`, `out_1[t]`, ...), 3x3
  conv to 3 channels (`conv_out_over`, `conv_out_1[t]`, ...), added to the bilinear upsampling
  (`align_corners=False`) of the branch's LR input. Outputs `I_0 .. I_T` per branch, clamped to
  [-1, 1] and mapped to [0, 255] inside the network, as the official `forward` does.

The blocks (`ConvBlock`, `DeconvBlock`, `ProjectionGroups`, `SRB`, `CFB`, `reconstruct`) live in
`cfanet/feedback.py`, the foundation CFANet builds on; this module imports them from there and
re-exports them, so `baselines.joint.cfnet.SRB` etc. keep working.

The projection geometry depends on the scale: x2 kernel 6, stride 2, padding 2; x4 kernel 8,
stride 4, padding 2 (the official code knows only these two scales). Any LR size works (odd ones
included): the deconvolution gives exactly `scale * size`, the strided convolution brings it back.

Differences from the official module, none of which changes the fp32 outputs:

- no `.cuda()`: the official `SRB.forward` copies its input into `torch.zeros(...).cuda()` and
  `CFNet.__init__` moves each CFB to the GPU; here the input is used as is, on any device;
- the hyper-parameters are constructor arguments (the official module reads the global
  `option.args` at import and construction time); `num_steps` is not taken (unused officially);
- the reconstruction of the intermediate outputs can be skipped at inference
  (`all_outputs=False`), since the coupled feedback never reads them;
- modules are created in the official order, so under the same `torch.manual_seed` the default
  PyTorch initialisation gives the same weights as the official `CFNet()` (the official training
  script uses that default initialisation).

Inference protocol of the official `test.py` (see `CFNet`): images read by OpenCV as BGR uint8,
`ToTensor` + `Normalize(0.5, 0.5)` to [-1, 1]; the fused image is
`0.5 * sr_over[-1] + 0.5 * sr_under[-1]` on [0, 255], written with `astype(np.uint8)`, i.e.
truncated, not rounded. Protocols (`cfanet.protocols`): "exact" (default) rounds to the nearest
8-bit level, half up, like every other method's output (tiling allowed); "official" is `test.py`
bit for bit: the whole image, one pair per forward pass, fp32, the truncating cast
(`output_mode="official_truncate"`): about half the values one level below "exact". The paper's
CF-Net sample and numbers were made with `test.py`, so with the official protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cfanet.adapter import DeepMethod
from cfanet.checkpoint import CheckpointError, check_state_dict, read_checkpoint, unwrap_state_dict
# The blocks live in the foundation layer (CFANet extends them); re-exported here under their old names.
from cfanet.feedback import (  # noqa: F401
    CFB,
    PEAK,
    PRELU_INIT,
    PROJECTION,
    SRB,
    ConvBlock,
    DeconvBlock,
    ProjectionGroups,
    check_pair,
    check_scale,
    reconstruct,
)
from cfanet.methods import register_method
from cfanet.protocols import EXACT, OFFICIAL, one_at_a_time
from cfanet.tiling import tiled_apply

# -- network ----------------------------------------------------------------------------------------

class CoupledFeedbackNetwork(nn.Module):
    """The CF-Net network (official `model.CFNet` with PReLU and no normalisation).

    `forward(lr_over, lr_under)`: BGR (N, 3, H, W) on [-1, 1] each -> `(sr_over, sr_under)`, two lists
    of `num_cfbs + 1` images (N, 3, scale*H, scale*W) on [0, 255] (clamped, BGR): the SRB's output
    `I_0` then one per coupled iteration. With `all_outputs=False` only the last of each is
    reconstructed (one-item lists, the same values).
    """

    def __init__(self, scale: int, num_features: int = 64, num_groups: int = 6, num_cfbs: int = 3,
                 in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        kernel_size, stride, padding = check_scale(scale)
        if num_cfbs < 1:
            raise ValueError(f"CF-Net needs at least one coupled feedback block, got num_cfbs={num_cfbs}")
        m = num_features
        self.scale, self.num_features, self.num_groups, self.num_cfbs = scale, m, num_groups, num_cfbs

        def rec_deconv() -> DeconvBlock:
            return DeconvBlock(m, m, kernel_size, stride, padding)

        def rec_conv() -> ConvBlock:
            return ConvBlock(m, out_channels, kernel_size=3, activation=False)

        # Over branch: FEB, SRB, REC of I_0.
        self.conv_in_over = ConvBlock(in_channels, 4 * m, kernel_size=3)
        self.feat_in_over = ConvBlock(4 * m, m, kernel_size=1)
        self.srb_1 = SRB(m, num_groups, scale)
        self.out_over = rec_deconv()
        self.conv_out_over = rec_conv()
        # Under branch: the same, except that the first conv has no activation (official quirk).
        self.conv_in_under = ConvBlock(in_channels, 4 * m, kernel_size=3, activation=False)
        self.feat_in_under = ConvBlock(4 * m, m, kernel_size=1)
        self.srb_2 = SRB(m, num_groups, scale)
        self.out_under = rec_deconv()
        self.conv_out_under = rec_conv()
        # Coupled feedback blocks (attributes cfb_over{t}, cfb_under{t}) and their RECs.
        self.out_1, self.conv_out_1 = nn.ModuleList(), nn.ModuleList()
        self.out_2, self.conv_out_2 = nn.ModuleList(), nn.ModuleList()
        for t in range(num_cfbs):
            setattr(self, f"cfb_over{t}", CFB(m, num_groups, scale))
            setattr(self, f"cfb_under{t}", CFB(m, num_groups, scale))
            self.out_1.append(rec_deconv())
            self.conv_out_1.append(rec_conv())
            self.out_2.append(rec_deconv())
            self.conv_out_2.append(rec_conv())

    def cfbs(self, branch: str) -> list[CFB]:
        """The coupled feedback blocks of one branch ("over" or "under"), in order."""
        return [getattr(self, f"cfb_{branch}{t}") for t in range(self.num_cfbs)]

    def forward(self, lr_over: torch.Tensor, lr_under: torch.Tensor,
                all_outputs: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        up_over = F.interpolate(lr_over, scale_factor=self.scale, mode="bilinear", align_corners=False)
        up_under = F.interpolate(lr_under, scale_factor=self.scale, mode="bilinear", align_corners=False)
        f_in_over = self.feat_in_over(self.conv_in_over(lr_over))
        f_in_under = self.feat_in_under(self.conv_in_under(lr_under))
        # G_0 from the SRBs, then G_t = CFB_t(F_in, G_{t-1}^own, G_{t-1}^other) for both branches.
        g_over, g_under = [self.srb_1(f_in_over)], [self.srb_2(f_in_under)]
        for t, (cfb_over, cfb_under) in enumerate(zip(self.cfbs("over"), self.cfbs("under"))):
            g_over.append(cfb_over(f_in_over, g_over[t], g_under[t]))
            g_under.append(cfb_under(f_in_under, g_under[t], g_over[t]))
        # Reconstruction: REC_0 for the SRB's features, REC_t for the t-th CFB's.
        recs_over = [(self.out_over, self.conv_out_over), *zip(self.out_1, self.conv_out_1)]
        recs_under = [(self.out_under, self.conv_out_under), *zip(self.out_2, self.conv_out_2)]
        keep = range(self.num_cfbs + 1) if all_outputs else [self.num_cfbs]
        sr_over = [reconstruct(g_over[t], *recs_over[t], up_over) for t in keep]
        sr_under = [reconstruct(g_under[t], *recs_under[t], up_under) for t in keep]
        return sr_over, sr_under


# -- the official 8-bit cast ------------------------------------------------------------------------

def official_uint8_cast(values: torch.Tensor) -> torch.Tensor:
    """`np.asarray(values, np.float32).astype(np.uint8)` as the official `test.py` does it, on x86-64.

    Truncation toward zero, then wrap-around modulo 256 (256.3 -> 0, 300 -> 44, -1.5 -> 255,
    -0.5 -> 0); NaN, infinities and values outside the int32 range give 0 (the "integer indefinite"
    of the x86 conversion). Numpy leaves out-of-range casts undefined; this fixes the x86 result.
    Returns a uint8 tensor of the same shape. (CF-Net's outputs are clamped to [0, 255], so on
    its own images this is a plain truncation: 254.99 -> 254.)
    """
    v = values.detach().to(torch.float64)
    truncated = torch.trunc(torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0))
    in_range = torch.isfinite(v) & (truncated >= -(2.0 ** 31)) & (truncated < 2.0 ** 31)
    return torch.where(in_range, torch.remainder(truncated, 256.0), 0.0).to(torch.uint8)


# -- adapter ----------------------------------------------------------------------------------------

@register_method("joint", tiles=True, tile_tolerance=1e-4, paper_order=1)
class CFNet(DeepMethod):
    """CF-Net behind the harness convention: `fuse_upscale(over, under)` takes two float32 RGB
    (N, 3, H, W) LR exposures in [0, 1] and returns the fused HR image, float32 RGB
    (N, 3, scale*H, scale*W) in [0, 1], on the inputs' device.

    Protocol (official `test.py`): RGB -> BGR, `(x - 0.5) / 0.5`, network, fused =
    `0.5 * sr_over[-1] + 0.5 * sr_under[-1]` on [0, 255], BGR -> RGB. `output_mode` says what
    happens to the fused [0, 255] values:

    - "round" (default): to the nearest 8-bit level, half up (what `cfanet.images.quantize` and
      every saved stage output do), divided by 255;
    - "official_truncate": the official script's `astype(np.uint8)` (`official_uint8_cast`:
      truncation, so on average half a level darker than "round"), divided by 255;
    - "float": no quantisation, the fused values divided by 255 (for parity checks and metrics on
      unquantised outputs).

    Runtime options: `device`; `tile` (LR pixels per tile side; 0 = whole image on CPU and chosen
    from free memory on CUDA; -1 = never tile) and `tile_overlap` (the pair is tiled together).
    The official code is fp32; the harness may autocast it (`autocast_dtypes`: PSNR moves < 0.05 dB).
    `protocol`: "exact" (`output_mode` "round" by default) or "official" (`test.py`: the whole
    image, one pair at a time, fp32, `output_mode` "official_truncate", the only mode it allows).
    """

    name: ClassVar[str] = "CF-Net"
    # Inference autocast dtypes that change PSNR by < 0.05 dB on the demo scenes (tests/test_autocast.py).
    autocast_dtypes: ClassVar[tuple[str, ...]] = ("bf16", "fp16")
    # Official: `option.py` defaults (64 features, 6 groups, 3 CFBs; x2/x4 differ only by the scale).
    # Small: the same code path with fewer features, groups and iterations, for the demo profile.
    configs: ClassVar[Mapping[str, Mapping]] = {
        "official": {"num_features": 64, "num_groups": 6, "num_cfbs": 3},
        "small": {"num_features": 16, "num_groups": 3, "num_cfbs": 2},
    }
    output_modes: ClassVar[tuple[str, ...]] = ("round", "official_truncate", "float")
    protocols: ClassVar[tuple[str, ...]] = (EXACT, OFFICIAL)
    # Peak memory of an fp32 no-grad official forward per LR pixel (of the pair), for the
    # automatic tile size on CUDA: the growth of the peak RSS between 32x32 and 64x64 inputs, each
    # in a fresh CPU process: x4 92 kB, x2 32 kB. The x4 figure, rounded up, for both.
    bytes_per_input_pixel: ClassVar[float] = 100_000.0
    # LR pixels neighbouring tiles share. Tiled vs untiled max |difference| on [0, 1] with seeded
    # weights (trained weights may reach farther): small x2 1.6e-5 / 1.2e-7 / 6e-8 at overlap
    # 8 / 16 / 24, small x4 6e-8 from 8 on, official x2 3.5e-6 at 8. 32 as SRFBN, whose projection
    # groups are the same; the tests check it on the small configuration.
    default_tile_overlap: ClassVar[int] = 32

    def __init__(self, network: CoupledFeedbackNetwork, scale: int, *, device: str | torch.device = "cpu",
                 output_mode: str | None = None, tile: int = 0, tile_overlap: int | None = None,
                 precision: str = "fp32", channels_last: bool = False, protocol: str = EXACT,
                 weights: str = "random init"):
        if output_mode is None:
            output_mode = "official_truncate" if protocol == OFFICIAL else "round"
        if protocol == OFFICIAL and output_mode != "official_truncate":
            raise ValueError(f"{self.name}: the official protocol writes test.py's truncated 8 bits "
                             f"(output_mode 'official_truncate'), got output_mode {output_mode!r}")
        if output_mode not in self.output_modes:
            raise ValueError(f"{self.name}: output_mode must be one of {', '.join(self.output_modes)}, "
                             f"got {output_mode!r}")
        if scale != network.scale:
            raise ValueError(f"{self.name}: scale {scale} does not match the network's x{network.scale}")
        self._setup(network, device=device, tile=tile, tile_overlap=tile_overlap, precision=precision,
                    channels_last=channels_last, protocol=protocol)
        self.scale, self.output_mode, self.weights = scale, output_mode, weights

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def build_network(cls, scale: int, **config) -> CoupledFeedbackNetwork:
        """The network with the official parameter names and PyTorch's default initialisation
        (the official training script adds none)."""
        return CoupledFeedbackNetwork(scale, **config)

    @classmethod
    def infer_config(cls, weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """What the state dict tells of its configuration: `scale` (from the reconstruction
        deconvolution's kernel: 6 -> x2, 8 -> x4), `num_features`, `num_groups`, `num_cfbs`;
        entries that cannot be read are left out."""
        found: dict[str, int] = {}
        deconv = weights.get("out_over.0.weight")
        by_kernel = {kernel: scale for scale, (kernel, _stride, _pad) in PROJECTION.items()}
        if deconv is not None and deconv.dim() == 4 and int(deconv.shape[-1]) in by_kernel:
            found["scale"] = by_kernel[int(deconv.shape[-1])]
        feat = weights.get("feat_in_over.0.weight")
        if feat is not None and feat.dim() == 4:
            found["num_features"] = int(feat.shape[0])
        groups = sum(1 for k in weights if k.startswith("srb_1.upBlocks.") and k.endswith(".0.weight"))
        if groups:
            found["num_groups"] = groups
        cfbs = sum(1 for k in weights if k.startswith("cfb_over") and k.endswith(".compress_in.0.weight"))
        if cfbs:
            found["num_cfbs"] = cfbs
        return found

    @classmethod
    def infer_scale(cls, weights: Mapping[str, torch.Tensor]) -> int | None:
        """The scale a state dict was trained for, from its deconvolution kernels; None if unknown."""
        return cls.infer_config(weights).get("scale")

    @classmethod
    def create(cls, scale: int, size: str = "official", seed: int | None = 0, **runtime) -> "CFNet":
        """A model of configuration `size` ("official" or "small") with seeded random weights."""
        config = cls.check_size(size)
        cls.seed(seed)
        return cls(cls.build_network(scale, **config), scale, **runtime)

    @classmethod
    def from_checkpoint(cls, path: str | Path, scale: int | None = None, key: str | None = None,
                        **runtime) -> "CFNet":
        """Load an official checkpoint (`{"model": state_dict, "loss": [...]}`) or a plain state dict,
        strictly. The scale and the configuration come from the weights; `scale`, if given, must agree.
        """
        weights = unwrap_state_dict(read_checkpoint(path), key=key, source=str(path))
        config = {**cls.configs["official"], **cls.infer_config(weights)}
        inferred = config.pop("scale", None)
        if scale is None:
            if inferred is None:
                raise CheckpointError(f"{path}: cannot tell the scale of this {cls.name} checkpoint "
                                      f"(no x2/x4 deconvolution `out_over.0.weight`); pass scale")
            scale = inferred
        elif inferred is not None and inferred != scale:
            raise CheckpointError(f"{path}: this is an x{inferred} {cls.name} checkpoint, but x{scale} was asked for")
        network = cls.build_network(scale, **config)
        check_state_dict(network.state_dict(), weights, source=str(path))
        network.load_state_dict(weights, strict=True)
        return cls(network, scale, weights=str(path), **runtime)

    # -- conventions ------------------------------------------------------------------------------

    @staticmethod
    def to_network(rgb: torch.Tensor) -> torch.Tensor:
        """Harness RGB [0, 1] -> the network's BGR [-1, 1] (`ToTensor` + `Normalize(0.5, 0.5)` of a BGR image)."""
        return (rgb.flip(1) - 0.5) / 0.5

    @staticmethod
    def from_network(bgr_255: torch.Tensor) -> torch.Tensor:
        """The network's BGR [0, 255] -> harness RGB [0, 1] (not quantised)."""
        return bgr_255.flip(1) / PEAK

    # -- inference and training -------------------------------------------------------------------

    def iteration_outputs(self, over: torch.Tensor,
                          under: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every output for training: `(outputs_over, outputs_under)`, each `num_cfbs + 1` float RGB
        (N, 3, scale*H, scale*W) images in [0, 1] (`I_0` from the SRB, then one per coupled
        iteration), differentiable, on the network's device; inputs as for `fuse_upscale`.
        The official loss compares `I_0` with the HR exposures and the later ones with the ground
        truth (`cfanet.losses.coupled_ssim_loss`). The network's training mode is left as it is.
        """
        check_pair(over, under, self.name)
        sr_over, sr_under = self.network(self.to_network(over.to(self.device, torch.float32)),
                                         self.to_network(under.to(self.device, torch.float32)))
        return [self.from_network(x) for x in sr_over], [self.from_network(x) for x in sr_under]

    def fused_255(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """The official fused image on [0, 255] as RGB, before any 8-bit cast; inputs on the model's device."""
        with self._autocast():
            sr_over, sr_under = self.network(self.to_network(over), self.to_network(under), all_outputs=False)
        return (0.5 * sr_over[-1].float() + 0.5 * sr_under[-1].float()).flip(1)

    @torch.no_grad()
    def fuse_upscale(self, over: torch.Tensor, under: torch.Tensor) -> torch.Tensor:
        """float32 RGB (N, 3, H, W) LR exposures in [0, 1] -> the fused float32 RGB
        (N, 3, scale*H, scale*W) in [0, 1], on `over`'s device; quantised as `output_mode` says."""
        check_pair(over, under, self.name)
        pair = torch.cat((over, under), dim=1).to(self.device, torch.float32)
        was_training = self.network.training
        self.network.eval()
        try:
            def fuse_pair(x: torch.Tensor) -> torch.Tensor:
                return self.fused_255(x[:, :3], x[:, 3:])

            if self.protocol == OFFICIAL:
                fused = one_at_a_time(fuse_pair, pair)
            else:
                fused = tiled_apply(fuse_pair, pair, self.scale, self._tile_size(pair), self.tile_overlap)
        finally:
            self.network.train(was_training)
        if self.output_mode == "round":
            fused = torch.floor(fused.clamp(0.0, PEAK) + 0.5)
        elif self.output_mode == "official_truncate":
            fused = official_uint8_cast(fused).to(torch.float32)
        return (fused / PEAK).clamp_(0.0, 1.0).to(over.device)
