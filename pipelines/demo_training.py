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
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from cfanet.training import JointTask, SRTask, Trainer, demo_config, demo_training_data
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


def _task(entry: MethodSpec, model, scale: int):
    if entry.kind == "sr":
        return SRTask(model)
    if entry.kind == "joint":
        return JointTask(model)
    return MefTask(model, entry.name, scale)


def train_demo_weights(entry: MethodSpec, scale: int, profile: Profile, path: Path, device: str = "cpu") -> Path:
    """Train `entry`'s small configuration for the demo and save it at `path` with its provenance."""
    settings = profile.demo_training
    model = entry.create(scale, "small", seed=settings.seed, device=device)
    train, val = demo_training_data(scale, hr_size=DEMO_TRAIN_HR_SIZE, seed=profile.dataset.seed,
                                    num_train=DEMO_TRAIN_SCENES, num_val=DEMO_VAL_SCENES)
    config = demo_config(max_steps=settings.steps, patch_size=settings.patch_size, batch_size=settings.batch_size,
                         seed=settings.seed,
                         precision="bf16" if profile.runtime.amp and torch.device(device).type == "cuda" else "fp32")
    task = _task(entry, model, scale)
    run_dir = path.with_name(path.stem + "_training")
    # A progress bar on a terminal; logs and pipes get one line per method instead of bar redraws.
    on_terminal = sys.stderr.isatty()
    if not on_terminal:
        print(f"training demo weights: {entry.name} x{scale} ({settings.steps} steps)", file=sys.stderr, flush=True)
    trainer = Trainer(task, train, val, config, run_dir, title=f"demo weights: {entry.name} x{scale}",
                      progress=on_terminal)
    result = trainer.fit(resume=True)
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
