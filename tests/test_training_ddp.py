"""Training on several processes (cfanet.training.distributed): DDP under torchrun, on the CPU (gloo).

The runs are real: `python -m torch.distributed.run --standalone --nproc_per_node=2
tests/ddp_driver.py ...`, which makes the train command's calls for a small CFANet on tiny
synthetic scenes (9 steps of a global batch of 4, 3 steps per epoch, validation each epoch), and
the single-process reference is the same driver without torchrun. One thread per process.

Tolerances, from the measured differences (torch 2.13, CPU, deterministic mode) with about ten
times their size as margin: 2 processes x 2 rows against 1 process x 4 rows differ only by float
summation order (the gradient is averaged over the ranks instead of summed over the rows at once);
the loss curves differed by at most 1.8e-6 relative, the final parameters by at most 5.9e-6
(Adam, lr 2e-3, 9 steps). A killed 2-process run resumed on 2 processes equals the uninterrupted
run bit for bit; resumed on 1 process it is within the same tolerance.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cfanet.checkpoint import read_checkpoint
from cfanet.training import DistributedContext, JointTask, Trainer, TrainingError, distributed_context

DRIVER = Path(__file__).resolve().parent / "ddp_driver.py"
STEPS = 9
LOSS_RTOL = 2e-5     # measured 1.8e-6
PARAM_ATOL = 5e-5    # measured 5.9e-6
RUN_TIMEOUT_S = 180


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _command(run_dir: Path, report: Path, *options: str, processes: int = 2) -> list[str]:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    return [*launcher, str(DRIVER), str(run_dir), str(report), *options]


def train(run_dir: Path, report: Path, *options: str, processes: int = 2) -> subprocess.CompletedProcess:
    """Run the driver to completion (its reports: `reports`)."""
    return subprocess.run(_command(run_dir, report, *options, processes=processes), env=_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def reports(report: Path, processes: int) -> list[dict]:
    return [torch.load(report / f"rank_{r}.pt", weights_only=True) for r in range(processes)]


def max_param_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def assert_ranks_agree(ranks: list[dict]) -> None:
    """Every rank ends with the same weights (bit for bit), losses, history and result."""
    first = ranks[0]
    for other in ranks[1:]:
        assert max_param_difference(first["params"], other["params"]) == 0.0
        assert other["losses"] == first["losses"] and other["history"] == first["history"]
        assert (other["steps"], other["stopped_by"], other["best"]) == (first["steps"], first["stopped_by"],
                                                                        first["best"])


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """An uninterrupted 2-process run of STEPS steps: (run folder, per-rank reports)."""
    root = tmp_path_factory.mktemp("ddp2")
    done = train(root / "run", root / "report", "--steps", str(STEPS))
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "run", reports(root / "report", 2)


# -- the context ---------------------------------------------------------------------------------

def test_without_torchrun_the_context_is_one_process_and_initialises_nothing(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with distributed_context("cpu") as ctx:
        assert (ctx.world_size, ctx.rank, ctx.local_rank, ctx.backend) == (1, 0, 0, None)
        assert ctx.device == torch.device("cpu") and ctx.is_main and not ctx.is_distributed
        assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")                  # torchrun --nproc_per_node=1: one process too
    assert distributed_context("cpu").world_size == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(TrainingError, match="launch with torchrun"):
        distributed_context("cpu")


def test_the_batch_size_is_global_and_must_divide_among_the_processes():
    assert DistributedContext(4, 1).rows(8) == range(2, 4)
    assert DistributedContext(2, 1).rows(4) == range(2, 4) and DistributedContext().rows(3) == range(0, 3)
    from test_training import TinyJoint, synthetic_scene, tiny_config

    # Refused before any collective (the DDP construction comes last), so a real run fails on
    # every rank alike instead of hanging.
    with pytest.raises(TrainingError, match="batch size 3 .* divisible by the world size 2"):
        Trainer(JointTask(TinyJoint()), [synthetic_scene("s", 0)], [], tiny_config(batch_size=3), "unused",
                distributed=DistributedContext(2, 0))


# -- two processes ---------------------------------------------------------------------------------

def test_two_processes_with_half_batches_follow_one_process_with_the_whole_batch(tmp_path, two_process_run):
    run_dir, ranks = two_process_run
    done = train(tmp_path / "run1", tmp_path / "report1", "--steps", str(STEPS), processes=1)
    assert done.returncode == 0, done.stdout + done.stderr
    (single,) = reports(tmp_path / "report1", 1)

    assert_ranks_agree(ranks)
    two = ranks[0]
    assert two["steps"] == single["steps"] == STEPS and two["world_size"] == 2 and single["world_size"] == 1
    losses, reference = np.array(two["losses"]), np.array(single["losses"])
    np.testing.assert_allclose(losses, reference, rtol=LOSS_RTOL, atol=0)      # the global batch's loss
    assert max_param_difference(two["params"], single["params"]) < PARAM_ATOL
    assert [h["step"] for h in two["history"]] == [h["step"] for h in single["history"]] == [0, 3, 6, 9]
    for a, b in zip(two["history"], single["history"]):
        assert a["world_size"] == 2 and b["world_size"] == 1
        assert a["val_psnr"] == pytest.approx(b["val_psnr"], abs=0.01)        # scenes split over the ranks
        assert a["val_psnr_sr"] == pytest.approx(b["val_psnr_sr"], abs=0.01)
        assert a["val_mef_ssim"] == pytest.approx(b["val_mef_ssim"], abs=1e-3)

    # Rank 0's files have the form of a single process's: no `module.` prefix, the world size recorded.
    last, single_last = read_checkpoint(run_dir / "last.pt"), read_checkpoint(tmp_path / "run1" / "last.pt")
    assert list(last["model"]) == list(single_last["model"])
    assert last["world_size"] == 2 and len(last["rng_by_rank"]) == 2 and "rng_by_rank" not in single_last
    assert max_param_difference(last["model"], two["params"]) == 0.0
    assert json.loads((run_dir / "history.json").read_text())["world_size"] == 2
    from cfanet.network import CFANet

    assert CFANet.from_checkpoint(run_dir / "best.pt").scale == 2


def test_a_killed_two_process_run_resumes_from_its_last_checkpoint(tmp_path, two_process_run):
    _, uninterrupted = two_process_run
    run_dir, report = tmp_path / "run", tmp_path / "report"
    # Every rank stalls at step 5 (mid epoch 2, after last.pt of epoch 1 = step 3); then all is killed.
    process = subprocess.Popen(_command(run_dir, report, "--steps", str(STEPS), "--stall-at-step", "5"),
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    markers = [report / f"stalled_{r}" for r in range(2)]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while not all(m.is_file() and m.read_text() for m in markers):
            assert process.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "the run never reached its stall"
            time.sleep(0.1)
        assert (run_dir / "last.pt").is_file() and read_checkpoint(run_dir / "last.pt")["step"] == 3
    finally:
        # torchrun's agent and its workers (each in a session of its own), as a crashed machine.
        os.killpg(process.pid, signal.SIGKILL)
        for marker in markers:
            if marker.is_file() and marker.read_text():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(marker.read_text()), signal.SIGKILL)
        process.wait()
    assert not (report / "rank_0.pt").exists()
    shutil.copytree(run_dir, tmp_path / "run_on_one")

    done = train(run_dir, report, "--steps", str(STEPS), "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    resumed = reports(report, 2)
    assert_ranks_agree(resumed)
    assert (resumed[0]["steps"], resumed[0]["steps_this_run"]) == (STEPS, STEPS - 3)
    # The same run as the uninterrupted one, bit for bit (same process count, deterministic CPU).
    assert max_param_difference(resumed[0]["params"], uninterrupted[0]["params"]) == 0.0
    assert resumed[0]["losses"] == uninterrupted[0]["losses"]
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert strip(resumed[0]["history"]) == strip(uninterrupted[0]["history"])

    # The same checkpoint resumed on one process: allowed (the batch size is global), close.
    done = train(tmp_path / "run_on_one", tmp_path / "report_one", "--steps", str(STEPS), "--resume", processes=1)
    assert done.returncode == 0, done.stdout + done.stderr
    (one,) = reports(tmp_path / "report_one", 1)
    assert (one["steps"], one["steps_this_run"]) == (STEPS, STEPS - 3)
    assert [(h["step"], h["world_size"]) for h in one["history"]] == [(0, 2), (3, 2), (6, 1), (9, 1)]
    np.testing.assert_allclose(one["losses"], uninterrupted[0]["losses"], rtol=LOSS_RTOL, atol=0)
    assert max_param_difference(one["params"], uninterrupted[0]["params"]) < PARAM_ATOL


def test_a_time_budget_stops_every_rank_at_the_same_step(tmp_path):
    done = train(tmp_path / "run", tmp_path / "report", "--minutes", "0.05")
    assert done.returncode == 0, done.stdout + done.stderr
    ranks = reports(tmp_path / "report", 2)
    assert_ranks_agree(ranks)
    assert ranks[0]["stopped_by"] == "time" and ranks[0]["steps"] > 0
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == ranks[0]["steps"]


def test_a_batch_that_does_not_divide_fails_on_every_rank_without_hanging(tmp_path):
    done = train(tmp_path / "run", tmp_path / "report", "--steps", "2", "--batch-size", "3")
    assert done.returncode != 0
    assert "batch size 3 is the global batch of all 2 processes" in done.stdout + done.stderr
    assert not (tmp_path / "run" / "last.pt").exists()
