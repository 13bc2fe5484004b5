"""The trainer (cfanet.training) and `cfanet-bench train`.

Mechanics (patches, schedule, checkpoints, resume, determinism, best checkpoint, curve) run on a
tiny duck-typed joint model that trains in milliseconds; the learning check trains a real (tiny)
CF-Net on the demo set. The full check (a small CF-Net / CFANet for a few CPU minutes against
bicubic upsampling + averaging on the test photographs) is `benchmarks/train_learning.py`.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cfanet.checkpoint import read_checkpoint, unwrap_state_dict
from cfanet.data.scene import Scene
from cfanet.training import (JointTask, PatchSampler, SRTask, Trainer, TrainingConfig, TrainingError, dihedral,
                             hold_out, precision_plan, validate, validation_keys)
from cfanet.training.patches import ROLES_BY_KIND
from cfanet.training.trainer import PrecisionPlan, train_step

SCALE = 2


# -- a tiny joint model (duck-typed like CF-Net's adapter) -----------------------------------------

class TinyJointNetwork(nn.Module):
    """Two outputs per branch: I_0 from the branch alone, I_1 from both branches. Dropout makes the
    forward pass draw from torch's global RNG, so resume must restore it."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        self.over = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.under = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        self.mix = nn.Conv2d(6, 6 * scale * scale, 3, padding=1)
        self.drop = nn.Dropout(0.1)

    def forward(self, over, under):
        up_o = F.interpolate(over, scale_factor=self.scale, mode="bilinear", align_corners=False)
        up_u = F.interpolate(under, scale_factor=self.scale, mode="bilinear", align_corners=False)
        o0 = up_o + F.pixel_shuffle(self.over(over), self.scale)
        u0 = up_u + F.pixel_shuffle(self.under(under), self.scale)
        mixed = F.pixel_shuffle(self.mix(self.drop(torch.cat((over, under), 1))), self.scale)
        return [o0, up_o + mixed[:, :3]], [u0, up_u + mixed[:, 3:]]


class TinyJoint:
    name = "tiny-joint"

    def __init__(self, scale: int = SCALE, seed: int = 0):
        torch.manual_seed(seed)
        self.scale, self.network = scale, TinyJointNetwork(scale)

    def iteration_outputs(self, over, under):
        outputs_over, outputs_under = self.network(over, under)
        return [o.clamp(0, 1) for o in outputs_over], [u.clamp(0, 1) for u in outputs_under]

    @torch.no_grad()
    def fuse_upscale(self, over, under):
        outputs_over, outputs_under = self.iteration_outputs(over, under)
        return (0.5 * (outputs_over[-1] + outputs_under[-1])).clamp(0, 1)


def nearest_up(x: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    return x.repeat_interleave(scale, -2).repeat_interleave(scale, -1)


def synthetic_scene(name: str, seed: int, size: tuple[int, int] = (20, 24), scale: int = SCALE) -> Scene:
    """LR exposures of random 8-bit levels; every HR image is a nearest upsampling of LR content, so
    an aligned HR crop equals the nearest upsampling of its LR crop."""
    g = torch.Generator().manual_seed(seed)
    over = torch.randint(0, 256, (1, 3, *size), generator=g).float() / 255
    under = torch.randint(0, 256, (1, 3, *size), generator=g).float() / 255
    gt = torch.round(0.5 * (over + under) * 255) / 255
    return Scene(name, over, under, nearest_up(gt, scale), nearest_up(over, scale), nearest_up(under, scale), scale)


@pytest.fixture(scope="module")
def scenes():
    return [synthetic_scene(f"s{i}", i) for i in range(5)]


@pytest.fixture(scope="module")
def val_scenes():
    return [synthetic_scene(f"v{i}", 100 + i) for i in range(2)]


def tiny_config(**overrides) -> TrainingConfig:
    values = dict(batch_size=2, patch_size=8, lr=1e-3, steps_per_epoch=4, epochs=None, max_steps=8, decay_every=1)
    values.update(overrides)
    return TrainingConfig(**values)


def run(tmp_path, scenes, val_scenes, config, name="run", seed=0, resume=False, model=None):
    model = model or TinyJoint(seed=seed)
    trainer = Trainer(JointTask(model), scenes, val_scenes, config, tmp_path / name, progress=False)
    return trainer, trainer.fit(resume=resume)


def parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# -- patches -----------------------------------------------------------------------------------------

def test_dihedral_is_the_group_of_eight():
    x = torch.arange(12.0).view(1, 3, 4)   # no symmetry
    images = [dihedral(x, k) for k in range(8)]
    assert torch.equal(images[0], x)
    assert len({(tuple(im.shape), tuple(im.flatten().tolist())) for im in images}) == 8
    with pytest.raises(ValueError):
        dihedral(x, 8)


def test_patches_are_aligned_across_lr_and_hr_under_every_augmentation(scenes):
    sampler = PatchSampler(scenes, patch_size=6, batch_size=4, seed=3)
    seen = set()
    for step in range(12):
        batch = sampler.batch(step)
        assert batch.over.shape == (4, 3, 6, 6) and batch.gt.shape == (4, 3, 12, 12)
        for role_lr, role_hr in (("over", "gt_over"), ("under", "gt_under")):
            assert torch.equal(nearest_up(getattr(batch, role_lr)), getattr(batch, role_hr))
        assert torch.equal(batch.gt, nearest_up(torch.round(0.5 * (batch.over + batch.under) * 255) / 255))
        for i in range(4):
            scene, top, left, k = sampler.sample_plan(step * 4 + i)
            seen.add(k)
            source = scenes[scene].over[0, :, top:top + 6, left:left + 6]
            assert torch.equal(batch.over[i], dihedral(source, k))   # the crop comes from where it says
    assert seen == set(range(8))


def test_sampler_is_stateless_and_visits_every_scene_once_per_pass(scenes):
    a = PatchSampler(scenes, patch_size=8, batch_size=1, seed=1)
    b = PatchSampler(scenes, patch_size=8, batch_size=1, seed=1)
    assert torch.equal(a.batch(7).gt, b.batch(7).gt)          # a pure function of (seed, step)
    assert torch.equal(a.batch(3).over, a.batch(3).over)
    assert not torch.equal(a.batch(3).over, PatchSampler(scenes, 8, 1, seed=2).batch(3).over)
    for p in range(3):
        assert sorted(a.sample_plan(p * 5 + i)[0] for i in range(5)) == list(range(5))
    no_aug = PatchSampler(scenes, patch_size=8, batch_size=1, seed=1, augment=False)
    assert all(no_aug.sample_plan(i)[3] == 0 for i in range(20))


def test_sampler_keeps_8_bit_images_compact_and_exact(scenes):
    sampler = PatchSampler(scenes, patch_size=20, batch_size=1, seed=0, augment=False)
    assert sampler._images[0]["over"].dtype == torch.uint8
    scene, top, left, _ = sampler.sample_plan(0)
    assert torch.equal(sampler.batch(0).over[0], scenes[scene].over[0, :, top:top + 20, left:left + 20])


def test_sampler_rejects_what_it_cannot_crop(scenes):
    with pytest.raises(TrainingError, match="smaller than the 32-pixel patch"):
        PatchSampler(scenes, patch_size=32, batch_size=1)
    no_gt = Scene("x", scenes[0].over, scenes[0].under, None, scenes[0].gt_over, scenes[0].gt_under, SCALE)
    with pytest.raises(TrainingError, match="no gt"):
        PatchSampler([no_gt], patch_size=8, batch_size=1)
    assert len(PatchSampler([no_gt], patch_size=8, batch_size=1, roles=ROLES_BY_KIND["sr"])) == 1
    bad = Scene("y", scenes[0].over, scenes[0].under, scenes[0].gt, scenes[0].gt_over[..., :-2], scenes[0].gt_under,
                SCALE)
    with pytest.raises(TrainingError, match="gt_over is 40x46"):
        PatchSampler([bad], patch_size=8, batch_size=1)


# -- configuration -----------------------------------------------------------------------------------

def test_config_defaults_are_cf_nets_and_validated():
    config = TrainingConfig()
    assert (config.batch_size, config.patch_size, config.lr) == (4, 64, 1e-4)
    assert (config.decay_every, config.decay_gamma, config.epochs) == (200, 0.5, 1000)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(TrainingError, match="budget"):
        TrainingConfig(epochs=None)
    with pytest.raises(TrainingError, match="patch_size"):
        TrainingConfig(patch_size=0)
    assert TrainingConfig(lr=1e-6).trajectory_differences(config) == ["lr: 1e-06 vs 0.0001"]
    assert TrainingConfig(epochs=3).trajectory_differences(config) == []   # budgets may change


def test_precision_plan_autocast_and_channels_last_on_cuda_only():
    config = TrainingConfig()
    assert config.precision == "fp32"                      # the paper's networks trained in fp32
    cpu = precision_plan(config, torch.device("cpu"))
    assert cpu.autocast_dtype is None and cpu.memory_format == torch.contiguous_format
    cuda = precision_plan(config, torch.device("cuda"))
    assert cuda.autocast_dtype is None and cuda.memory_format == torch.channels_last and not cuda.scales_gradients
    bf16 = precision_plan(TrainingConfig(precision="bf16"), torch.device("cuda"))
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.scales_gradients
    fp16 = precision_plan(TrainingConfig(precision="fp16"), torch.device("cuda"))
    assert fp16.autocast_dtype == torch.float16 and fp16.scales_gradients
    assert fp16.describe() == "cuda, fp16 autocast + gradient scaling, channels-last"
    plain = precision_plan(TrainingConfig(precision="bf16", channels_last=False), torch.device("cuda"))
    assert plain.autocast_dtype == torch.bfloat16 and plain.memory_format == torch.contiguous_format


def test_precision_is_validated_and_refused_off_cuda(tmp_path, scenes):
    for bad in ("amp", "bfloat16", "FP32", True, None):
        with pytest.raises(TrainingError, match="precision must be one of fp32, bf16, fp16"):
            TrainingConfig(precision=bad)
    for precision in ("bf16", "fp16"):
        with pytest.raises(TrainingError, match="on the cpu train in fp32"):
            precision_plan(TrainingConfig(precision=precision), torch.device("cpu"))
        with pytest.raises(TrainingError, match=f"precision '{precision}' is for CUDA"):
            Trainer(JointTask(TinyJoint()), scenes, [], tiny_config(precision=precision), tmp_path / "x",
                    progress=False)


def test_old_amp_key_maps_to_precision_and_old_checkpoints_resume(tmp_path, scenes):
    values = TrainingConfig().to_dict()
    del values["precision"]
    assert TrainingConfig.from_dict({**values, "amp": True}).precision == "bf16"
    assert TrainingConfig.from_dict({**values, "amp": False}).precision == "fp32"
    with pytest.raises(TrainingError, match="unknown training settings: amp"):
        TrainingConfig.from_dict({**TrainingConfig().to_dict(), "amp": True})   # amp only stands in for precision
    # A last.pt written before `precision` existed (amp = True, the old default) resumes on the CPU,
    # where amp never acted: that run was fp32.
    config = tiny_config(max_steps=4, steps_per_epoch=2)
    run(tmp_path, scenes, [], tiny_config(max_steps=2, steps_per_epoch=2), "old")
    last = tmp_path / "old" / "last.pt"
    state = read_checkpoint(last)
    del state["config"]["precision"]
    state["config"]["amp"] = True
    torch.save(state, last)
    _, result = run(tmp_path, scenes, [], config, "old", resume=True)
    assert result.steps == 4 and result.steps_this_run == 2


def test_bf16_channels_last_step_runs_with_an_fp32_loss(scenes):
    # The CUDA code path (autocast + channels-last batches, loss outside autocast), exercised on the CPU.
    from baselines.joint.cfnet import CFNet

    torch.manual_seed(0)
    model = CFNet(CFNet.build_network(SCALE, num_features=8, num_groups=3, num_cfbs=1), SCALE)
    task = JointTask(model)
    plan = PrecisionPlan("cpu", torch.bfloat16, torch.channels_last)
    model.network.to(memory_format=plan.memory_format)
    batch = PatchSampler(scenes, 8, 2).batch(0).to("cpu", plan.memory_format)
    assert batch.over.is_contiguous(memory_format=torch.channels_last)
    with plan.autocast():
        loss = task.loss(batch)
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    before = parameters(model.network)
    optimizer = torch.optim.Adam(model.network.parameters(), lr=1e-3)
    assert math.isfinite(train_step(task, optimizer, batch, plan))
    assert any(not torch.equal(before[k], v) for k, v in model.network.state_dict().items())


def test_the_fp16_gradient_scaler_steps_and_is_checkpointed(tmp_path, scenes):
    # The CUDA fp16 path's loss scaling and its checkpointing, exercised with the CPU's GradScaler:
    # power-of-two scales are exact in fp32, so the weights equal an unscaled run's bit for bit.
    config = tiny_config(max_steps=4, steps_per_epoch=2)
    plain, _ = run(tmp_path, scenes, [], config, "plain")
    trainer = Trainer(JointTask(TinyJoint()), scenes, [], config, tmp_path / "scaled", progress=False)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=2)
    trainer.fit()
    assert_bitwise_equal(parameters(trainer.module), parameters(plain.module))
    assert read_checkpoint(trainer.last_path)["scaler"]["scale"] == 2.0 ** 12      # grown twice in 4 steps
    resumed = Trainer(JointTask(TinyJoint()), scenes, [], tiny_config(max_steps=5, steps_per_epoch=2),
                      tmp_path / "scaled", progress=False)
    resumed.scaler = torch.amp.GradScaler("cpu", init_scale=1.0, growth_interval=2)
    resumed.fit(resume=True)
    assert resumed.scaler.get_scale() == 2.0 ** 12 and resumed.step == 5


# -- the loop --------------------------------------------------------------------------------------

def test_schedule_halves_the_learning_rate_every_decay_epochs(tmp_path, scenes):
    config = tiny_config(steps_per_epoch=1, max_steps=5, decay_every=2, lr=0.01, validate_at_start=False)
    trainer, result = run(tmp_path, scenes, [], config)
    assert [h["lr"] for h in result.history] == [0.01, 0.01, 0.005, 0.005, 0.0025]
    assert trainer.lr == 0.0025   # halved at the ends of epochs 2 and 4
    assert result.epochs_completed == 5


def test_checkpoint_holds_everything_a_resume_needs(tmp_path, scenes, val_scenes):
    trainer, result = run(tmp_path, scenes, val_scenes, tiny_config(max_steps=6))
    state = read_checkpoint(result.last_checkpoint)   # weights_only: only tensors and plain values
    assert state["step"] == 6 and state["epoch"] == 1 and len(state["losses"]) == 6
    optimizer = state["optimizer"]["state"]
    assert len(optimizer) == len(list(trainer.module.parameters()))
    assert all({"exp_avg", "exp_avg_sq", "step"} <= set(s) for s in optimizer.values())
    assert all(float(s["step"]) == 6 for s in optimizer.values())
    assert state["scheduler"]["last_epoch"] == 1
    assert {"torch", "numpy", "python", "cuda"} == set(state["rng"])
    assert state["config"] == tiny_config(max_steps=6).to_dict() and state["task"]["model"] == "tiny-joint"
    weights = unwrap_state_dict(state)
    assert_bitwise_equal(weights, parameters(trainer.module))
    assert not list(tmp_path.glob("run/.*.part"))   # atomic writes leave no temporary files


def test_resume_equals_uninterrupted_training_bit_for_bit(tmp_path, scenes, val_scenes):
    config = tiny_config(max_steps=10, steps_per_epoch=4, decay_every=1)   # the cut falls mid-epoch
    straight, _ = run(tmp_path, scenes, val_scenes, config, "straight")

    run(tmp_path, scenes, val_scenes, tiny_config(max_steps=5, steps_per_epoch=4, decay_every=1), "cut")
    torch.manual_seed(12345)                      # a "fresh process": other global RNG states,
    np.random.seed(9)
    resumed_model = TinyJoint(seed=77)            # other initial weights, new optimiser and scheduler
    resumed, result = run(tmp_path, scenes, val_scenes, config, "cut", resume=True, model=resumed_model)

    assert result.steps == 10 and result.steps_this_run == 5
    assert_bitwise_equal(parameters(straight.module), parameters(resumed.module))
    assert straight.losses == resumed.losses
    assert straight.lr == resumed.lr
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    for i in a:
        assert torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) and torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"])
    with pytest.raises(TrainingError, match="other settings.*lr"):
        run(tmp_path, scenes, val_scenes, tiny_config(max_steps=12, lr=5e-4), "cut", resume=True)


def test_same_seed_same_run_other_seed_other_run(tmp_path, scenes, val_scenes):
    a, _ = run(tmp_path, scenes, val_scenes, tiny_config(max_steps=4), "a")
    b, _ = run(tmp_path, scenes, val_scenes, tiny_config(max_steps=4), "b")
    c, _ = run(tmp_path, scenes, val_scenes, tiny_config(max_steps=4, seed=1), "c")
    assert_bitwise_equal(parameters(a.module), parameters(b.module))
    assert a.losses == b.losses and a.losses != c.losses


def test_refuses_to_overwrite_a_run(tmp_path, scenes):
    run(tmp_path, scenes, [], tiny_config(max_steps=1))
    with pytest.raises(TrainingError, match="exists: resume"):
        run(tmp_path, scenes, [], tiny_config(max_steps=1))


class ScriptedScores(JointTask):
    """Validation predictions of known quality: the ground truth plus noise of a scripted size."""

    def __init__(self, model, noise_levels):
        super().__init__(model)
        self.noise_levels, self.calls = list(noise_levels), 0

    def predict(self, scene):
        level = self.noise_levels[min(self.calls // 2, len(self.noise_levels) - 1)]   # 2 validation scenes
        self.calls += 1
        noise = torch.Generator().manual_seed(self.calls)
        return (scene.gt + level * torch.randn(scene.gt.shape, generator=noise)).clamp(0, 1)


def test_best_checkpoint_is_the_best_validation_psnr(tmp_path, scenes, val_scenes):
    config = tiny_config(max_steps=12, steps_per_epoch=3, validate_at_start=False)
    task = ScriptedScores(TinyJoint(), [0.2, 0.05, 0.1, 0.3])     # best: the 2nd validation, step 6
    trainer = Trainer(task, scenes, val_scenes, config, tmp_path / "best", progress=False)
    result = trainer.fit()
    psnrs = [h["val_psnr"] for h in result.history]
    assert [h["step"] for h in result.history] == [3, 6, 9, 12] and int(np.argmax(psnrs)) == 1
    assert result.best["step"] == 6 and result.best["selected_by"] == "val_psnr"
    best = read_checkpoint(result.best_checkpoint)
    assert best["step"] == 6 and best["scores"]["val_psnr"] == psnrs[1] and "optimizer" not in best
    again, _ = run(tmp_path, scenes, val_scenes, tiny_config(max_steps=6, steps_per_epoch=3), "to6")
    assert_bitwise_equal(unwrap_state_dict(best), parameters(again.module))   # the weights of step 6


def test_curve_png_history_and_validation_scores_are_written(tmp_path, scenes, val_scenes):
    _, result = run(tmp_path, scenes, val_scenes, tiny_config(max_steps=6))   # 1.5 epochs: a partial record
    assert result.curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result.curve.stat().st_size > 10_000
    summary = json.loads(result.history_file.read_text())
    assert [h["step"] for h in summary["history"]] == [0, 4, 6] and summary["history"][-1]["epoch"] == 1.5
    record = summary["history"][1]
    assert 5 < record["val_psnr"] < 60 and 0 < record["val_ssim"] <= 1 and record["val_mef_ssim"] <= 1
    from cfanet.metrics.registry import METRICS

    assert all(record[f"val_{metric.name}"] is not None for metric in METRICS)   # every registered metric
    assert record["val_psnr_sr"] is not None and record["val_ssim_sr"] is not None
    assert summary["world_size"] == 1 and record["world_size"] == 1
    assert 0 <= record["val_qabf"] < 1
    losses = read_checkpoint(result.last_checkpoint)["losses"]
    assert record["train_loss"] == pytest.approx(sum(losses[:4]) / 4)
    assert summary["history"][2]["train_loss"] == pytest.approx(sum(losses[4:]) / 2)


def test_validation_scores_both_conventions_as_the_metrics_compute_them(val_scenes):
    from cfanet.metrics.mef_ssim import mef_ms_ssim
    from cfanet.metrics.psnr_ssim import psnr, ssim
    from cfanet.metrics.qabf import qabf
    from cfanet.metrics.registry import METRICS

    keys = validation_keys()
    assert keys == ["val_psnr", "val_psnr_sr", "val_ssim", "val_ssim_sr", "val_mef_ssim", "val_qabf"]
    for metric in METRICS:   # the registry decides which metrics are scored per convention
        assert (f"val_{metric.name}_sr" in keys) == metric.convention_dependent
        assert keys.count(f"val_{metric.name}") == 1
    task = JointTask(TinyJoint())
    scene = val_scenes[0]
    scores = validate(task, [scene])
    assert list(scores) == keys and task.module.training      # left in training mode
    task.module.eval()
    fused = task.predict(scene).float().clamp(0, 1)
    sources = [scene.gt_over, scene.gt_under]
    assert scores["val_psnr"] == psnr(fused, scene.gt, convention="paper", scale=SCALE)
    assert scores["val_ssim"] == ssim(fused, scene.gt, convention="paper", scale=SCALE)
    assert scores["val_psnr_sr"] == psnr(fused, scene.gt, convention="sr", scale=SCALE)   # Y, crop = scale
    assert scores["val_ssim_sr"] == ssim(fused, scene.gt, convention="sr", scale=SCALE)
    assert scores["val_mef_ssim"] == mef_ms_ssim(sources, fused).score
    assert scores["val_qabf"] == qabf(sources, fused)
    assert scores["val_psnr_sr"] != scores["val_psnr"] and scores["val_ssim_sr"] != scores["val_ssim"]
    no_gt = Scene("n", scene.over, scene.under, None, scene.gt_over, scene.gt_under, SCALE)
    partial = validate(task, [no_gt])
    assert partial["val_psnr"] is None and partial["val_ssim_sr"] is None and partial["val_mef_ssim"] is not None


def test_sr_task_trains_a_real_sr_model(tmp_path):
    from baselines.sr.srfbn import SRFBN
    from cfanet.data.demo import DemoDataset

    scenes = list(DemoDataset(SCALE, num_scenes=2, hr_size=48, split="train"))
    model = SRFBN.create(SCALE, size="small", seed=0)
    task = SRTask(model)
    trainer = Trainer(task, scenes, scenes[:1], tiny_config(max_steps=2, steps_per_epoch=2), tmp_path / "sr",
                      progress=False)
    before = parameters(task.module)
    result = trainer.fit()
    assert result.steps == 2 and all(math.isfinite(v) for v in trainer.losses)
    assert any(not torch.equal(before[k], v) for k, v in task.module.state_dict().items())
    assert result.history[-1]["val_psnr"] > 5
    assert SRTask(model).predict(scenes[0]).shape == scenes[0].gt.shape


def test_tasks_name_what_a_model_lacks():
    with pytest.raises(TrainingError, match="lacks iteration_outputs"):
        JointTask(type("M", (), {"network": nn.Linear(1, 1), "scale": 2, "fuse_upscale": None})())
    with pytest.raises(TrainingError, match="SRTask"):
        SRTask(object())


def test_hold_out_is_seeded_and_disjoint():
    names = [f"n{i}" for i in range(40)]
    train, val = hold_out(names, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == sorted(names)
    assert hold_out(names, seed=0) == (train, val)


# -- it learns -------------------------------------------------------------------------------------

def test_a_tiny_cf_net_learns_on_the_demo_set(tmp_path):
    """A real but small learning check (about 10 s): a tiny CF-Net (8 features, 3 groups, 1 coupled
    iteration) trained 100 steps on 16 demo training scenes must lower its training loss, gain
    over its own untrained output and beat bicubic upsampling + averaging on held-out validation
    scenes, and gain over its untrained output on the unseen test photographs. The full check
    (beating bicubic + average on the test photographs) is benchmarks/train_learning.py."""
    from baselines.joint.cfnet import CFNet
    from cfanet.data.demo import DemoDataset
    from cfanet.metrics import psnr
    from cfanet.resize import imresize
    from cfanet.training import demo_training_data

    train, val = demo_training_data(SCALE, hr_size=192, num_train=16, num_val=3)
    test = list(DemoDataset(SCALE, num_scenes=3, hr_size=192, split="test"))
    torch.manual_seed(0)
    model = CFNet(CFNet.build_network(SCALE, num_features=8, num_groups=3, num_cfbs=1), SCALE, output_mode="float")
    task = JointTask(model)

    def mean_psnr(fuse, scenes):
        return float(np.mean([psnr(fuse(s), s.gt) for s in scenes]))

    def bicubic_average(s):
        return (0.5 * (imresize(s.over, scale=SCALE) + imresize(s.under, scale=SCALE))).clamp(0, 1)

    untrained_test = mean_psnr(task.predict, test)
    config = TrainingConfig(patch_size=16, batch_size=4, lr=2e-3, steps_per_epoch=50, epochs=None, max_steps=100)
    trainer = Trainer(task, train, val, config, tmp_path / "learn", progress=False)
    result = trainer.fit()
    first, last = result.history[0], result.history[-1]
    assert np.mean(trainer.losses[-20:]) < 0.85 * np.mean(trainer.losses[:10])
    assert last["val_psnr"] > first["val_psnr"] + 1.5
    assert last["val_psnr"] > mean_psnr(bicubic_average, val) + 1.0
    assert mean_psnr(task.predict, test) > untrained_test + 0.5


# -- the command -----------------------------------------------------------------------------------

def _train_args(argv):
    from pipelines.train_command import add_train_parser

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_command_refuses_u2fusion_and_mef_net_with_reasons(capsys):
    from pipelines.train_command import cmd_train

    assert cmd_train(_train_args(["U2Fusion"])) == 2
    assert "VGG-16" in capsys.readouterr().err
    assert cmd_train(_train_args(["MEF-Net"])) == 2
    assert "not implemented yet" in capsys.readouterr().err


def test_command_trains_cf_net_on_the_demo_split_and_resumes(tmp_path, capsys, monkeypatch):
    from pipelines.train_command import cmd_train

    monkeypatch.chdir(tmp_path)   # no benchmark.toml here: the built-in demo profile
    monkeypatch.delenv("CFANET_BENCH_CONFIG", raising=False)
    output = tmp_path / "out"
    common = ["CF-Net", "--patch-size", "16", "--steps-per-epoch", "2", "--output", str(output), "--no-progress",
              "--device", "cpu"]
    assert cmd_train(_train_args([*common, "--steps", "2"])) == 0
    printed = capsys.readouterr().out
    assert f"wrote {output / 'last.pt'}" in printed and f"wrote {output / 'curve.png'}" in printed
    assert "16 training scenes" in printed
    assert cmd_train(_train_args([*common, "--steps", "2"])) == 2        # the folder holds a run
    assert "exists: resume" in capsys.readouterr().err
    assert cmd_train(_train_args([*common, "--steps", "3", "--resume"])) == 0
    assert "3 steps" in capsys.readouterr().out
    from baselines.joint.cfnet import CFNet

    assert CFNet.from_checkpoint(output / "best.pt").scale == SCALE   # the best weights load as a model


def test_command_keeps_test_scenes_out_of_training_on_other_datasets(tmp_path):
    from cfanet.data.scene import DatasetError
    from cfanet.images import write_image
    from pipelines.config import parse_config
    from pipelines.train_command import training_scenes

    for i in range(6):
        for role in ("over", "under", "gt"):
            write_image(tmp_path / "data" / f"s{i}" / f"{role}.png", torch.rand(1, 3, 24, 24))
    (tmp_path / "test.txt").write_text("s0\ns1\n")

    def profile(**dataset):
        table = {"profiles": {"p": {"dataset": {"kind": "triples", "root": str(tmp_path / "data"), **dataset}}},
                 "default_profile": "p"}
        return parse_config(table, base_dir=tmp_path).profile()

    args = argparse.Namespace(train_split=None, val_split=None, seed=0, no_progress=True)
    with pytest.raises(DatasetError, match="--train-split"):
        training_scenes(profile(), SCALE, args)        # no evaluation split: training could see test scenes
    train, val, description = training_scenes(profile(split_file=str(tmp_path / "test.txt")), SCALE, args)
    names = {s.name for s in train} | {s.name for s in val}
    assert names == {"s2", "s3", "s4", "s5"} and len(val) == 1 and "3 training scenes" in description
    (tmp_path / "val.txt").write_text("s2\n")
    args.val_split = str(tmp_path / "val.txt")
    with pytest.raises(DatasetError, match="also training scenes"):
        training_scenes(profile(split_file=str(tmp_path / "test.txt")), SCALE, args)


def test_training_speed_is_measured_on_synthetic_batches():
    from cfanet.training.speed import measure_training_speed

    speed = measure_training_speed(JointTask(TinyJoint()), tiny_config(batch_size=2, patch_size=8), steps=2, warmup=1)
    assert speed["steps_per_second"] > 0 and speed["precision"] == "cpu, fp32, contiguous"
    assert (speed["batch_size"], speed["patch_size"], speed["scale"]) == (2, 8, SCALE)


def test_demo_weights_training_prints_one_line_instead_of_a_bar_off_a_terminal(tmp_path, capfd):
    """`run-all` in a log or pipe: a line per method, no progress-bar redraws filling the log."""
    import tomllib

    from pipelines.config import parse_config
    from pipelines.demo_training import train_demo_weights
    from pipelines.registry import method

    text = "[profiles.demo]\n[profiles.demo.demo_training]\nsteps = 2\npatch_size = 16\nbatch_size = 2\n"
    profile = parse_config(tomllib.loads(text), source="t.toml", base_dir=tmp_path).profile("demo")
    path = train_demo_weights(method("RCAN"), 2, profile, tmp_path / "RCAN_x2.pt", "cpu")
    assert path.is_file()
    err = capfd.readouterr().err
    assert "training demo weights: RCAN x2 (2 steps)" in err
    assert "step/s" not in err and "\r" not in err
