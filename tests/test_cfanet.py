"""CFANet (cfanet/network.py) and the shared blocks (cfanet/feedback.py).

Attention-off equivalence: a seeded CF-Net (`baselines.joint.cfnet.CFNet.create`, small x2/x4 and
official x2) saved in the official container and loaded with
`CFANet.from_cfnet_checkpoint(path, ablation="attention_off")` (renamed keys only, strict both
ways) gives every iteration's over/under output and the fused image with max |difference| = 0
(bit-identical) against CF-Net.

Regression fixture: `tests/fixtures/cfanet_regression.npz`, made by `make_regression_fixture`
(small configuration, seed 0, the same astronaut exposure pairs as CF-Net's fixture: 13x11 at x2,
9x7 at x4): the unquantised fused image per scale and, at x2, every iteration's outputs; checked
to 1e-5. Regenerate it (only after an intended change of the outputs) with
`python tests/test_cfanet.py --regen`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from cfanet.checkpoint import CheckpointError, CheckpointMismatchError
from cfanet.losses import CoupledLossWeights, coupled_ssim_loss
from cfanet.network import (
    ABLATIONS,
    CFANet,
    CFANetConfig,
    CFANetNetwork,
    cfnet_state_dict_to_cfanet,
    cfnet_to_cfanet_key,
    infer_config,
    recalibrate,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGRESSION = FIXTURES / "cfanet_regression.npz"
REPO = Path(__file__).resolve().parents[1]
# The crops of CF-Net's regression fixture (rows, cols of the half-size astronaut), odd sizes.
REGRESSION_CROPS = {2: (slice(60, 73), slice(90, 101)), 4: (slice(60, 69), slice(90, 97))}


def exposure_pair(rows: slice, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """An 8-bit over/under pair from a crop of skimage's astronaut (x 1.8 clipped, x 0.4), float32 RGB [0, 1]."""
    crop = astronaut()[::2, ::2][rows, cols].astype(np.float64)
    over = np.floor(np.clip(crop * 1.8, 0, 255) + 0.5)
    under = np.floor(crop * 0.4 + 0.5)
    return tuple(torch.from_numpy(x.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()
                 for x in (over, under))


def make_regression_fixture(path: Path = REGRESSION) -> None:
    arrays = {}
    for scale, crop in REGRESSION_CROPS.items():
        over, under = exposure_pair(*crop)
        model = CFANet.create(scale, "small", seed=0, output_mode="float")
        arrays[f"x{scale}_fused"] = model.fuse_upscale(over, under)[0].numpy()
        if scale == 2:
            with torch.no_grad():
                outputs_over, outputs_under = model.iteration_outputs(over, under)
            arrays["x2_iterations_over"] = torch.cat(outputs_over).numpy()
            arrays["x2_iterations_under"] = torch.cat(outputs_under).numpy()
    np.savez_compressed(path, **arrays)


def outputs(model: CFANet, over: torch.Tensor, under: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        outputs_over, outputs_under = model.iteration_outputs(over, under)
    return outputs_over + outputs_under


# -- layering and configuration -------------------------------------------------------------------------

def test_cfnet_reexports_the_foundation_blocks_and_cfanet_never_imports_baselines():
    import baselines.joint.cfnet as cfnet
    import cfanet.feedback as feedback

    for name in ("ConvBlock", "DeconvBlock", "ProjectionGroups", "SRB", "CFB", "reconstruct", "check_scale",
                 "check_pair", "PROJECTION", "PRELU_INIT", "PEAK"):
        assert getattr(cfnet, name) is getattr(feedback, name), name
    code = ("import sys, cfanet.network, cfanet.feedback\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'baselines'], 'baselines imported'\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_parameter_counts():
    # Official: CF-Net's 17,048,297 / 28,975,849 plus 8 CAs of 64*4+4 + 4*64+64 = 580 values and
    # the under branch's first PReLU (4,641); small (CF-Net 422,343 / 723,399): 6 CAs of 16*4+4 + 4*16+16.
    counts = {(scale, size): sum(p.numel() for p in CFANetNetwork(scale, CFANetConfig.named(size)).parameters())
              for scale in (2, 4) for size in ("official", "small")}
    assert counts == {(2, "official"): 17_052_938, (4, "official"): 28_980_490,
                      (2, "small"): 423_232, (4, "small"): 724_288}
    assert counts[2, "official"] - 17_048_297 == 8 * 580 + 1 and counts[2, "small"] - 422_343 == 6 * 148 + 1


def test_configurations_and_ablations_are_data():
    official = CFANetConfig.named("official")
    assert official == CFANetConfig()
    assert (official.num_features, official.num_groups, official.num_iterations, official.reduction) == (64, 6, 3, 16)
    assert official.attention and official.recalibration == "paper" and official.feedback == "attended"
    assert official.under_first_activation and official.attend_srb_output and official.re_guide
    assert not official.share_feature_extraction and official.channel_order == "bgr"
    assert not official.reduces_to_cfnet and official.attended_iterations == (0, 1, 2, 3)
    off = CFANetConfig.named("small", "attention_off")
    assert off.reduces_to_cfnet and off.attended_iterations == () and off.num_iterations == 2
    assert not CFANetConfig(attention=False).reduces_to_cfnet   # the paper's symmetric FEB differs
    assert CFANetConfig.named("small", "current_only").recalibration == "current_only"
    assert CFANetConfig.from_dict(official.to_dict()) == official
    assert set(ABLATIONS) == {"attention_off", "current_only", "raw_feedback", "no_srb_attention"}


@pytest.mark.parametrize("options, message", [
    ({"num_features": 0}, "num_features must be a positive integer"),
    ({"num_iterations": True}, "num_iterations must be a positive integer"),
    ({"recalibration": "previous"}, "recalibration must be one of paper, current_only"),
    ({"feedback": "gated"}, "feedback must be one of attended, raw"),
    ({"channel_order": "yuv"}, "channel_order must be one of bgr, rgb"),
    ({"attention": 1}, "attention must be True or False"),
    ({"projection_kernel": 5}, "projection_kernel must be None"),
    ({"num_groups": 2}, r"re_guide \(after group 3\) needs num_groups >= 3"),
    ({"share_feature_extraction": True, "under_first_activation": False}, "shared feature extraction"),
    ({"heads": 4}, "unknown options heads"),
])
def test_invalid_configurations_raise(options, message):
    with pytest.raises(ValueError, match=message):
        CFANetConfig.from_dict(options)


def test_unknown_names_and_scale():
    with pytest.raises(ValueError, match="unknown configuration 'large'"):
        CFANet.create(2, "large")
    with pytest.raises(ValueError, match="unknown ablation 'no_attention'"):
        CFANet.create(2, "small", ablation="no_attention")
    with pytest.raises(ValueError, match=r"scales \[2, 4\], got 3"):
        CFANetNetwork(3, CFANetConfig.named("small"))
    with pytest.raises(ValueError, match="output_mode must be one of round, float"):
        CFANet.create(2, "small", output_mode="official_truncate")


# -- shapes and structure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scale, size", [(2, (7, 13)), (4, (5, 9)), (2, (1, 1))])
def test_shapes_odd_sizes_and_batches(scale, size):
    model = CFANet.create(scale, "small", seed=0)
    over, under = exposure_pair(slice(60, 60 + size[0]), slice(90, 90 + size[1]))
    over, under = over.repeat(2, 1, 1, 1), under.repeat(2, 1, 1, 1)
    hr = (2, 3, scale * size[0], scale * size[1])
    iterations = outputs(model, over, under)
    assert len(iterations) == 2 * (model.config.num_iterations + 1)
    assert all(x.shape == hr and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 for x in iterations)
    fused = model.fuse_upscale(over, under)
    assert fused.shape == hr and fused.dtype == torch.float32 and torch.equal(fused[0], fused[1])
    assert torch.equal(fused * 255, (fused * 255).round())   # 8-bit levels by default
    assert torch.equal(model.fuse_upscale(over.double(), under.double()), fused)


def test_official_configuration_tiny_forward():
    model = CFANet.create(4, "official", seed=0, output_mode="float")
    over, under = exposure_pair(slice(60, 63), slice(90, 94))
    iterations = outputs(model, over, under)
    assert len(iterations) == 8 and all(x.shape == (1, 3, 12, 16) for x in iterations)
    assert model.fuse_upscale(over, under).shape == (1, 3, 12, 16)


def test_fused_is_the_mean_of_the_last_outputs_and_bgr_is_the_network_order():
    model = CFANet.create(2, "small", seed=0, output_mode="float")
    over, under = exposure_pair(slice(60, 67), slice(90, 99))
    outputs_over, outputs_under = model.iteration_outputs(over, under)
    assert torch.allclose(model.fuse_upscale(over, under), 0.5 * outputs_over[-1] + 0.5 * outputs_under[-1],
                          rtol=0, atol=1e-6)
    assert torch.equal(model.to_network(over), (over[:, [2, 1, 0]] - 0.5) / 0.5)
    rgb = CFANet(CFANetNetwork(2, CFANetConfig.named("small", channel_order="rgb")))
    assert torch.equal(rgb.to_network(over), (over - 0.5) / 0.5)


def test_branches_are_coupled_only_through_the_feedback():
    """I_0 of a branch sees only its own exposure (its SRB attention too); every later output sees both."""
    model = CFANet.create(2, "small", seed=0)
    over, under = exposure_pair(slice(60, 70), slice(90, 98))
    first, second = outputs(model, over, under), outputs(model, over, under * 0.5)
    assert torch.equal(first[0], second[0]) and not torch.equal(first[1], second[1])


def test_layout_variants_build_and_run():
    over, under = exposure_pair(slice(60, 65), slice(90, 96))
    for options in ({"share_feature_extraction": True}, {"share_attention": True}, {"projection_kernel": 3},
                    {"re_guide": False}, {"attention_bias": False}, {"attend_srb_output": False}):
        for scale in (2, 4):
            model = CFANet.create(scale, "small", seed=0, **options)
            assert all(x.shape == (1, 3, 5 * scale, 6 * scale) for x in outputs(model, over, under)), options
            assert infer_config(model.network.state_dict())[next(iter(options))] == next(iter(options.values()))
    keys = CFANet.create(2, "small", share_feature_extraction=True).network.state_dict()
    assert "feb.conv_in.1.weight" in keys and not any(k.startswith(("over.feb", "under.feb")) for k in keys)


# -- the attention-off ablation is CF-Net ---------------------------------------------------------------------

def _cfnet_file(tmp_path: Path, scale: int, size: str, seed: int = 1):
    from baselines.joint.cfnet import CFNet

    cfnet = CFNet.create(scale, size, seed=seed, output_mode="float")
    path = tmp_path / f"model_x{scale}.pth"
    torch.save({"model": cfnet.network.state_dict(), "loss": [np.float64(0.5)]}, path)   # the official container
    return cfnet, path


@pytest.mark.parametrize("scale, size", [(2, "small"), (4, "small"), (2, "official")])
def test_attention_off_is_cfnet_bit_for_bit(tmp_path, scale, size):
    cfnet, path = _cfnet_file(tmp_path, scale, size)
    model = CFANet.from_cfnet_checkpoint(path, ablation="attention_off", output_mode="float")
    assert model.config.reduces_to_cfnet and model.scale == scale
    assert model.num_parameters == sum(p.numel() for p in cfnet.network.parameters())
    assert set(model.network.state_dict()) == set(cfnet_state_dict_to_cfanet(cfnet.network.state_dict()))
    crop = (slice(60, 69), slice(90, 97)) if size == "small" else (slice(60, 64), slice(90, 93))
    over, under = exposure_pair(*crop)
    with torch.no_grad():
        expected = cfnet.iteration_outputs(over, under)
    diffs = [float((a - b).abs().max()) for a, b in zip(outputs(model, over, under), expected[0] + expected[1])]
    diffs.append(float((model.fuse_upscale(over, under) - cfnet.fuse_upscale(over, under)).abs().max()))
    assert max(diffs) <= 1e-6   # 0.0 when written: the same operations in the same order


def test_cfnet_weights_initialise_the_attention_model(tmp_path):
    cfnet, path = _cfnet_file(tmp_path, 2, "small")
    model = CFANet.from_cfnet_checkpoint(path, num_iterations=2)
    own = model.network.state_dict()
    for name, value in cfnet.network.state_dict().items():
        assert torch.equal(own[cfnet_to_cfanet_key(name)], value), name
    assert model.config.attention and "over.attention.1.w1.weight" in own and "under.feb.conv_in.1.weight" in own
    over, under = exposure_pair(slice(60, 66), slice(90, 95))
    with torch.no_grad():
        assert not torch.equal(outputs(model, over, under)[-1], cfnet.iteration_outputs(over, under)[1][-1])
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        CFANet.from_cfnet_checkpoint(path, projection_kernel=3)
    with pytest.raises(CheckpointError, match="x2 CF-Net checkpoint, but x4"):
        CFANet.from_cfnet_checkpoint(path, scale=4)
    with pytest.raises(CheckpointError, match="CF-Net checkpoint .official layout.; load it with"):
        CFANet.from_checkpoint(path)


def test_cfnet_key_mapping():
    assert cfnet_to_cfanet_key("conv_in_under.0.weight") == "under.feb.conv_in.0.weight"
    assert cfnet_to_cfanet_key("srb_2.upBlocks.5.1.weight") == "under.srb.upBlocks.5.1.weight"
    assert cfnet_to_cfanet_key("cfb_over2.re_guide.0.bias") == "over.cfab.2.re_guide.0.bias"
    assert cfnet_to_cfanet_key("out_over.0.weight") == "over.rec.0.deconv.0.weight"
    assert cfnet_to_cfanet_key("conv_out_under.0.bias") == "under.rec.0.conv.0.bias"
    assert cfnet_to_cfanet_key("out_1.0.1.weight") == "over.rec.1.deconv.1.weight"
    assert cfnet_to_cfanet_key("conv_out_2.2.0.weight") == "under.rec.3.conv.0.weight"
    with pytest.raises(ValueError, match="not a CF-Net parameter name"):
        cfnet_to_cfanet_key("head.0.weight")


# -- channel attention and recalibration ---------------------------------------------------------------------

def test_recalibration_formula_on_hand_made_tensors():
    g = torch.tensor([[[[1.0, -2.0], [0.5, 4.0]], [[3.0, 0.0], [-1.0, 2.0]]]])   # G_t (1, 2, 2, 2)
    s = torch.tensor([0.25, 0.75]).view(1, 2, 1, 1)                                # s_t
    s_prev = torch.tensor([0.5, 0.125]).view(1, 2, 1, 1)                           # s_{t-1}
    first = torch.tensor([[[[1.25, -2.5], [0.625, 5.0]], [[5.25, 0.0], [-1.75, 3.5]]]])
    assert torch.equal(recalibrate(g, s), first)                                   # C_1 = G (s + 1)
    later = first + torch.tensor([[[[0.5, -1.0], [0.25, 2.0]], [[0.375, 0.0], [-0.125, 0.25]]]])
    assert torch.equal(recalibrate(g, s, s_prev), later)                           # C_t = G s_{t-1} + G (s + 1)


def _traced(model: CFANet, over, under):
    """G_t (CFB / SRB outputs), s_t (attention outputs), C_t (REC inputs), X_{t-1}^own (CFB inputs)
    of the over branch, recorded with forward hooks."""
    branch, seen = model.network.over, {"g": {}, "s": {}, "c": {}, "x": {}}

    def record(kind: str, t: int, value_of):
        def hook(module, args, out):   # returns None: the output is left as it is
            seen[kind][t] = value_of(args, out)
        return hook

    handles = [branch.srb.register_forward_hook(record("g", 0, lambda a, out: out))]
    for t, cfab in enumerate(branch.cfab, start=1):
        handles.append(cfab.register_forward_hook(record("g", t, lambda a, out: out)))
        handles.append(cfab.register_forward_hook(record("x", t - 1, lambda a, out: a[1])))
    for key, attention in branch.attention.items():
        handles.append(attention.register_forward_hook(record("s", int(key), lambda a, out: out)))
    for t, rec in enumerate(branch.rec):
        handles.append(rec.register_forward_hook(record("c", t, lambda a, out: a[0])))
    outputs(model, over, under)
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("ablation", [None, "current_only", "raw_feedback"])
def test_network_applies_the_recalibration_and_feedback(ablation):
    model = CFANet.create(2, "small", seed=0, ablation=ablation)
    seen = _traced(model, *exposure_pair(slice(60, 66), slice(90, 97)))
    g, s, c, x = seen["g"], seen["s"], seen["c"], seen["x"]
    assert s[1].shape == (1, 16, 1, 1) and 0 < s[1].min() and s[1].max() < 1
    assert torch.equal(c[0], g[0] * (s[0] + 1)) and torch.equal(c[1], g[1] * (s[1] + 1))
    if ablation == "current_only":
        assert torch.equal(c[2], g[2] * (s[2] + 1))
    else:
        assert torch.equal(c[2], g[2] * s[1] + g[2] * (s[2] + 1))
    fed = g if ablation == "raw_feedback" else c
    assert torch.equal(x[0], fed[0]) and torch.equal(x[1], fed[1])


def test_ablations_differ_where_they_should():
    over, under = exposure_pair(slice(60, 67), slice(90, 96))
    paper = outputs(CFANet.create(2, "small", seed=0), over, under)
    current = outputs(CFANet.create(2, "small", seed=0, ablation="current_only"), over, under)
    raw = outputs(CFANet.create(2, "small", seed=0, ablation="raw_feedback"), over, under)
    # Outputs are [I_0^o, I_1^o, I_2^o, I_0^u, I_1^u, I_2^u]; the previous-iteration term enters at t = 2.
    for i in (0, 1, 3, 4):
        assert torch.equal(paper[i], current[i])
    assert (paper[2] - current[2]).abs().max() > 1e-4 and (paper[5] - current[5]).abs().max() > 1e-4
    assert torch.equal(paper[0], raw[0]) and (paper[1] - raw[1]).abs().max() > 1e-4


# -- loss ---------------------------------------------------------------------------------------------------

def _tiny_problem():
    hr_over, hr_under = exposure_pair(slice(40, 56), slice(80, 96))
    pool = torch.nn.functional.avg_pool2d
    return {"over": pool(hr_over, 2), "under": pool(hr_under, 2), "gt_over": hr_over, "gt_under": hr_under,
            "gt": 0.5 * (hr_over + hr_under)}


def test_loss_is_the_hierarchical_ssim_loss_with_configurable_weights():
    model = CFANet.create(2, "small", seed=0)
    batch = _tiny_problem()
    outputs_over, outputs_under = model.iteration_outputs(batch["over"], batch["under"])
    expected = coupled_ssim_loss(outputs_over, outputs_under, batch["gt_over"], batch["gt_under"], batch["gt"],
                                 data_range=1.0)
    loss = model.loss(batch)
    assert loss.dim() == 0 and torch.allclose(loss, expected, rtol=0, atol=1e-6) and 0 < float(loss.detach()) < 6
    terms = model.loss_terms(SimpleNamespace(**batch))   # attribute access works too (a Scene)
    assert set(terms) == {"over_0", "under_0", "over_1", "under_1", "over_2", "under_2"}
    assert torch.allclose(sum(terms.values()), loss, rtol=0, atol=1e-5)
    only_first = CoupledLossWeights(over=1.0, under=0.5, iterations=(0.0, 0.0))
    assert torch.allclose(model.loss(batch, only_first), terms["over_0"] + 0.5 * terms["under_0"], atol=1e-6)
    model.loss_weights = CoupledLossWeights(iterations=(0.0, 2.0))
    assert torch.allclose(model.loss(batch), terms["over_0"] + terms["under_0"]
                          + 2 * (terms["over_2"] + terms["under_2"]), atol=1e-5)
    with pytest.raises(ValueError, match="the batch has no 'gt_under'"):
        model.loss({k: v for k, v in batch.items() if k != "gt_under"})


def test_training_steps_reduce_the_loss():
    """A few Adam steps on one tiny pair (narrower than "small": 8 features, 3 groups, 1 iteration)."""
    model = CFANet.create(2, "small", seed=0, num_features=8, num_iterations=1, reduction=2)
    model.network.train()
    batch = _tiny_problem()
    optimiser = torch.optim.Adam(model.network.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = model.loss(batch)
        losses.append(float(loss.detach()))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert all(p.grad is not None for p in model.network.parameters())
    assert all(p.grad.abs().sum() > 0 for name, p in model.network.named_parameters() if "attention" in name)
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.03


# -- checkpoints -----------------------------------------------------------------------------------------------

def test_checkpoint_round_trip_rebuilds_the_configuration(tmp_path):
    options = {"recalibration": "current_only", "feedback": "raw", "channel_order": "rgb", "share_attention": True}
    source = CFANet.create(4, "small", seed=3, **options)
    path = source.save(tmp_path / "cfanet_x4.pth", epoch=7)
    loaded = CFANet.from_checkpoint(path, output_mode="float")
    assert loaded.config == source.config and loaded.scale == 4 and loaded.weights == str(path)
    assert loaded.config.recalibration == "current_only" and loaded.config.channel_order == "rgb"
    for name, value in source.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[name], value), name
    over, under = exposure_pair(slice(60, 65), slice(90, 94))
    source.output_mode = "float"
    assert torch.equal(loaded.fuse_upscale(over, under), source.fuse_upscale(over, under))
    with pytest.raises(CheckpointError, match="x4 CFANet checkpoint, but x2 was asked for"):
        CFANet.from_checkpoint(path, scale=2)
    # A trainer's container (weights under "model", its own "config") rebuilds from the description
    # it carries at the top level or in its "task" entry.
    for where in ("top", "task"):
        description = {"cfanet": source.describe()}
        container = {"format": "some trainer", "config": {"lr": 1e-4}, "model": source.network.state_dict(),
                     **(description if where == "top" else {"task": {"kind": "joint", **description}})}
        torch.save(container, tmp_path / "trained.pth")
        assert CFANet.from_checkpoint(tmp_path / "trained.pth").config == source.config, where


def test_plain_state_dicts_load_with_the_inferred_structure(tmp_path):
    for options in ({}, {"num_iterations": 1, "attend_srb_output": False}, {"attention": False}):
        source = CFANet.create(2, "small", seed=0, **options)
        path = tmp_path / "plain.pth"
        torch.save(source.network.state_dict(), path)
        loaded = CFANet.from_checkpoint(path)
        # Without attention the reduction leaves no trace (and has no effect): the default is taken.
        assert loaded.config == replace(source.config, reduction=loaded.config.reduction), options
        assert loaded.config.reduction == (16 if options.get("attention") is False else 4)
    found = infer_config(CFANet.create(4, "official").network.state_dict())
    assert found == {"scale": 4, **{k: v for k, v in CFANetConfig().to_dict().items()
                                    if k not in ("recalibration", "feedback", "channel_order")}}


def test_malformed_checkpoints_fail_clearly(tmp_path):
    model = CFANet.create(2, "small")
    payload = model.checkpoint()
    payload["cfanet"]["config"]["feedback"] = "gated"
    torch.save(payload, tmp_path / "bad_config.pth")
    with pytest.raises(CheckpointError, match="configuration is not valid: .*feedback must be one of"):
        CFANet.from_checkpoint(tmp_path / "bad_config.pth")
    payload = model.checkpoint()
    payload["cfanet"]["config"]["num_iterations"] = 3
    torch.save(payload, tmp_path / "wrong_config.pth")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys .*over\.attention\.3"):
        CFANet.from_checkpoint(tmp_path / "wrong_config.pth")


# -- outputs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_regression_fixture(scale):
    expected = np.load(REGRESSION)
    over, under = exposure_pair(*REGRESSION_CROPS[scale])
    model = CFANet.create(scale, "small", seed=0, output_mode="float")
    np.testing.assert_allclose(model.fuse_upscale(over, under)[0].numpy(), expected[f"x{scale}_fused"],
                               rtol=0, atol=1e-5)
    if scale == 2:
        iterations = outputs(model, over, under)
        outputs_over, outputs_under = iterations[:3], iterations[3:]
        np.testing.assert_allclose(torch.cat(outputs_over).numpy(), expected["x2_iterations_over"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(torch.cat(outputs_under).numpy(), expected["x2_iterations_under"], rtol=0, atol=1e-5)


def test_channels_last_and_bf16_autocast():
    over, under = exposure_pair(slice(60, 69), slice(90, 97))
    reference = CFANet.create(2, "small", seed=0, output_mode="float").fuse_upscale(over, under)
    channels_last = CFANet.create(2, "small", seed=0, output_mode="float", channels_last=True)
    assert (channels_last.fuse_upscale(over, under) - reference).abs().max() < 1e-5
    bf16 = CFANet.create(2, "small", seed=0, output_mode="float", precision="bf16", channels_last=True)
    fused = bf16.fuse_upscale(over, under)
    assert fused.dtype == torch.float32 and (fused - reference).abs().max() < 0.05
    outputs_over, outputs_under = bf16.iteration_outputs(over, under)
    assert all(x.dtype == torch.float32 for x in outputs_over + outputs_under)
    sum(x.mean() for x in outputs_over + outputs_under).backward()


@pytest.mark.parametrize("over, under, message", [
    (torch.rand(3, 8, 8), torch.rand(3, 8, 8), r"over must be shaped \(N, 3, H, W\) RGB, got \(3, 8, 8\)"),
    (torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), r"under must be shaped"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.rand(1, 3, 8, 8), "over must be float"),
    (torch.rand(1, 3, 8, 8), np.zeros((1, 3, 8, 8), np.float32), "under must be a torch tensor"),
    (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9), r"over and under differ in shape: \(1, 3, 8, 8\) vs"),
    (torch.rand(1, 3, 0, 8), torch.rand(1, 3, 0, 8), "over is empty"),
    (torch.rand(1, 3, 8, 8), torch.full((1, 3, 8, 8), float("nan")), "under holds NaN"),
])
def test_malformed_inputs_raise(over, under, message):
    model = CFANet.create(2, "small")
    with pytest.raises(ValueError, match=f"CFANet: {message}"):
        model.fuse_upscale(over, under)
    with pytest.raises(ValueError, match=message):
        model.iteration_outputs(over, under)


if __name__ == "__main__":
    if sys.argv[1:] == ["--regen"]:
        make_regression_fixture()
        print(f"wrote {REGRESSION} ({REGRESSION.stat().st_size} bytes)")
    else:
        sys.exit("usage: python tests/test_cfanet.py --regen")
