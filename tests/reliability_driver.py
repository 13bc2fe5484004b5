"""`cfanet-bench` as a subprocess for the reliability tests (kill/resume, concurrency).

Usage: `python tests/reliability_driver.py --config FILE run-all` (any `cfanet-bench` arguments).

It is the real command line, with two test conveniences: demo weights are the seeded small models
of `tests/test_runner.py` (the engine is under test, not training) made to take
`$RELIABILITY_TRAIN_SECONDS` each, standing for training time so that kills also land while
weights are being made; and every module the run needs is imported before the driver prints
`ready`, so that kill moments measured from `ready` fall in the run's work, not in Python's start.
One thread per process, so that results do not depend on how many processes share the cores.
"""

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

torch.set_num_threads(1)

import cfanet.metrics.mef_ssim  # noqa: E402,F401
import cfanet.metrics.psnr_ssim  # noqa: E402,F401
import cfanet.network  # noqa: E402,F401
import pandas  # noqa: E402,F401
import pipelines.demo_training  # noqa: E402
import pipelines.registry  # noqa: E402
import pipelines.runner  # noqa: E402,F401
import skimage.data  # noqa: E402,F401
from pipelines.cli import main  # noqa: E402
from test_runner import seeded_weights  # noqa: E402


def timed_seeded_weights(entry, scale, profile, path, device):
    time.sleep(float(os.environ.get("RELIABILITY_TRAIN_SECONDS", "0")))
    return seeded_weights(entry, scale, profile, path, device)


pipelines.demo_training.train_demo_weights = timed_seeded_weights
pipelines.registry.builtin_methods()  # imports every method's module

if __name__ == "__main__":
    print("ready", flush=True)
    sys.exit(main(sys.argv[1:]))
