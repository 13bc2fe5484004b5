"""Demo weights: a deep method's small configuration trained briefly on the demo `train` split.

The demo profile runs every method without downloads. A deep method without configured weights is
trained here with the project's trainer (`cfanet.training`) for `demo_training.steps` steps on
scenes generated from photographs that the benchmark's `test` scenes never use, then saved with
its provenance (steps, loss, validation PSNR) under the stage cache's folder. Every report labels
these as demo weights: they show that the harness works end to end, not how the published methods
perform.

Losses: SR models L1 on both exposures; CF-Net and CFANet their coupled SSIM loss; MEF-Net its own
training loss (`MEFNetLoss`, unsupervised, on the HR exposure pairs). U2Fusion's loss needs
pretrained VGG-16 features that cannot be downloaded here, so its demo weights are trained with
MEF-Net's loss as a stand-in; the metadata and reports say so.

Cost: training is most of a cold demo run, so the run is kept short (`DemoTrainingConfig`): small
LR patches, one validation at the end (the weights kept are the last step's, which that validation
scores), and the generated scenes made once per process for all models. Each model shows a progress
bar with its remaining time on a terminal and logs one line before and one after otherwise.
`tests/test_demo_weights.py` checks that every model's demo weights beat its seeded initialisation
on held-out scenes.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cfanet.data.scene import Scene
from cfanet.training import JointTask, SRTask, Trainer, TrainingConfig, demo_config, demo_training_data
from cfanet.training.state import load_training_checkpoint
from cfanet.methods import MethodSpec
from pipelines.config import Profile
from pipelines.model_files import save_model_checkpoint

DEMO_TRAIN_SCENES = 16
DEMO_VAL_SCENES = 2
DEMO_TRAIN_HR_SIZE = 96


class MefTask:
    """Unsupervised MEF training on HR exposure pairs with MEF-Net's MEF-SSIM loss (Y channel).

    Works for MEF-Net (its network takes low- and full-resolution Y) and, as a stand-in for its
    VGG-based loss, U2Fusion (its network takes the two Y images).
    """

    kind = "mef"

    def __init__(self, model, method: str, scale: int):
        from baselines.mef.mefnet import MEFNetLoss

        self.model, self.method, self._scale = model, method, scale
        self.criterion = MEFNetLoss()

    @property
    def module(self) -> torch.nn.Module:
        return self.model.network

    @property
    def scale(self) -> int:
        return self._scale

    def _fused_y(self, over: torch.Tensor, under: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method == "MEF-Net":
            from baselines.mef.mefnet import rgb_to_ycbcr

            y = rgb_to_ycbcr(torch.stack((over, under), dim=1))[:, :, 0]          # (N, 2, H, W)
            n, k, h, w = y.shape
            y_low = F.interpolate(y, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear", align_corners=False)
            fused, _ = self.model.network(y_low, y)
            return fused, y
        first, second = self.model.network_inputs(over, under)
        fused = self.model.network(torch.cat((first, second), dim=1))
        return fused, torch.cat((first, second), dim=1)

    def loss(self, batch) -> torch.Tensor:
        fused, sources = self._fused_y(batch.gt_over, batch.gt_under)
        return self.criterion(fused.float(), sources.float())

    def predict(self, scene) -> torch.Tensor:
        return self.model.fuse(scene.gt_over, scene.gt_under)

    def config(self) -> dict:
        loss = "MEF-Net's MEF-SSIM training loss" + (" (stand-in: U2Fusion's needs VGG-16)" if self.method == "U2Fusion" else "")
        return {"kind": self.kind, "model": self.method, "loss": loss,
                "num_parameters": sum(p.numel() for p in self.module.parameters())}


@functools.lru_cache(maxsize=4)
def _demo_scenes(scale: int, seed: int) -> tuple[tuple[Scene, ...], tuple[Scene, ...]]:
    """The demo training and validation scenes at `scale`, generated once per process and shared by
    every model's training (nothing changes them: the patch sampler copies what it crops)."""
    train, val = demo_training_data(scale, hr_size=DEMO_TRAIN_HR_SIZE, seed=seed, num_train=DEMO_TRAIN_SCENES,
                                    num_val=DEMO_VAL_SCENES)
    return tuple(train), tuple(val)


def demo_training_config(profile: Profile, device: str = "cpu") -> TrainingConfig:
    """The trainer's settings for demo weights: `demo_config` with the profile's `[demo_training]`
    table (as `train --preset demo`), validated once, at the end of the run.

    One validation instead of one per epoch: the curve of a run this short says little, and the
    eight validations it skips are about 5% of the demo training. With no record before the last,
    the best checkpoint is the last one, so the weights kept are those the run ends with (selecting
    by validation PSNR kept early weights of the MEF models, whose loss does not use the ground
    truth)."""
    settings = profile.demo_training
    epochs = math.ceil(settings.steps / demo_config().steps_per_epoch)
    return demo_config(max_steps=settings.steps, patch_size=settings.patch_size, batch_size=settings.batch_size,
                       seed=settings.seed,
                       precision="bf16" if profile.runtime.amp and torch.device(device).type == "cuda" else "fp32",
                       validate_at_start=False, validate_every=epochs + 1)  # past the last epoch: at the end only


def _task(entry: MethodSpec, model, scale: int):
    if entry.kind == "sr":
        return SRTask(model)
    if entry.kind == "joint":
        return JointTask(model)
    return MefTask(model, entry.name, scale)


def train_demo_weights(entry: MethodSpec, scale: int, profile: Profile, path: Path, device: str = "cpu", *,
                       progress: bool | None = None) -> Path:
    """Train `entry`'s small configuration for the demo and save it at `path` with its provenance.

    `progress`: a progress bar for this model (steps done, rate, remaining time); None (default): only
    when stderr is a terminal, as the runner's bars. Without a bar, one line to stderr says which model
    trains and one how long it took."""
    settings = profile.demo_training
    model = entry.create(scale, "small", seed=settings.seed, device=device)
    train, val = _demo_scenes(scale, profile.dataset.seed)
    config = demo_training_config(profile, device)
    task = _task(entry, model, scale)
    run_dir = path.with_name(path.stem + "_training")
    show_bar = sys.stderr.isatty() if progress is None else progress
    if not show_bar:
        print(f"training demo weights: {entry.name} x{scale} ({settings.steps} steps)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    trainer = Trainer(task, train, val, config, run_dir, title=f"demo weights: {entry.name} x{scale}",
                      progress=show_bar)
    result = trainer.fit(resume=True)
    if not show_bar:
        print(f"trained demo weights: {entry.name} x{scale} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
    chosen = result.best_checkpoint or result.last_checkpoint
    model.network.load_state_dict(load_training_checkpoint(chosen)["model"])
    # Wall-clock times are kept out of the file so that identical trainings give identical bytes
    # (the file's SHA-256 keys the stage cache); the training folder's history.json keeps them.
    def timeless(record: dict | None) -> dict | None:
        return None if record is None else {k: v for k, v in record.items() if k != "seconds"}

    history = timeless(result.history[-1]) if result.history else {}
    metadata = {"method": entry.name, "size": "small", "scale": scale, "demo": True,
                "trainer": "cfanet.training, demo_config", "steps": result.steps,
                "checkpoint": chosen.name, "loss": task.config().get("loss"), "best": timeless(result.best),
                "train_split": f"demo train photographs, {DEMO_TRAIN_SCENES} scenes of {DEMO_TRAIN_HR_SIZE} px",
                "last_record": history}
    return save_model_checkpoint(model.network, path, metadata)


def seeded_demo_weights(entry: MethodSpec, scale: int, profile: Profile, path: Path, device: str) -> Path:
    """Demo weights without training: the profile's configuration of the method with seeded random
    weights, saved like trained ones. For measuring and testing the engine (its cost and behaviour
    do not depend on the weights' values), passed as `Runner(weights_trainer=...)`."""
    size = profile.model_size
    model = entry.create(scale, size, seed=0)
    return save_model_checkpoint(model.network, path, {"method": entry.name, "size": size, "scale": scale,
                                                       "demo": True, "trainer": "seeded initialisation"})
