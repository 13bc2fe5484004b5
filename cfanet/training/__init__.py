"""The trainer every trainable model of the project uses (see `trainer` for the loop).

- `config`: `TrainingConfig`, every setting with documented defaults; `demo_config` for short runs;
- `patches`: aligned random LR/HR patch batches with the 8 flips/rotations, stateless in the step;
- `tasks`: the `TrainingTask` protocol and `JointTask` / `SRTask` adapters (duck-typed models);
- `trainer`: `Trainer(...).fit(resume=...)`, validation (both PSNR/SSIM conventions), checkpoints,
  precision on CUDA (fp32, bf16, fp16);
- `distributed`: `distributed_context(device)` for runs of several processes under torchrun
  (DistributedDataParallel; the batch size is the global batch);
- `state`: atomic checkpoint files and RNG states; `curves`: the PNG of the loss, the validation
  PSNR (both conventions) and MEF-SSIM;
- `data`: demo training/validation scenes, named scenes of a dataset; `speed`: steps per second.

Importing this package loads torch and numpy; matplotlib and tqdm load when used.
"""

from cfanet.training.config import TrainingConfig, TrainingError, demo_config
from cfanet.training.data import demo_training_data, hold_out, load_scenes
from cfanet.training.distributed import DistributedContext, distributed_context, shutdown
from cfanet.training.patches import PatchBatch, PatchSampler, dihedral
from cfanet.training.tasks import JointTask, SRTask, TrainingTask
from cfanet.training.trainer import Trainer, TrainingResult, precision_plan, validate, validation_keys

__all__ = [
    "DistributedContext",
    "JointTask",
    "PatchBatch",
    "PatchSampler",
    "SRTask",
    "Trainer",
    "TrainingConfig",
    "TrainingError",
    "TrainingResult",
    "TrainingTask",
    "demo_config",
    "demo_training_data",
    "distributed_context",
    "dihedral",
    "hold_out",
    "load_scenes",
    "precision_plan",
    "shutdown",
    "validate",
    "validation_keys",
]
