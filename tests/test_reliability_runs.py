"""Reliability of `run-all` as a process: killed at random moments, and run twice at once.

Both tests drive the real command line in subprocesses (`tests/reliability_driver.py`: the
`cfanet-bench` entry point with seeded demo weights instead of training) on a shortened demo: all
34 methods on 2 scenes of 48x48 HR pixels (92 stages). Figures are printed (`pytest -s` shows
them) and asserted.

Kill and resume: two chains of runs in parallel, 10 kills each. Every attempt is killed (SIGKILL
to its process group) after a delay drawn uniformly (seeded) from the measured duration of an
uninterrupted run, counted from the moment the process has imported everything, so the kills
land while demo weights are made, while scenes are checked, while stages compute, while scores
are computed and while images and rows are written. After every attempt, killed or not:

- no finished item was written again: every complete stage entry (image + metadata), metric
  value and weights file present before the attempt still has the same inode, size and mtime
  (`os.replace` of a new file would change the inode), and the attempt's database rows record no
  computation of a stage that was complete before it started;
- everything that counts as written is whole: every complete cache entry decodes, every metric
  file and weights file loads, leftover temporary files are never counted as entries, and the
  database passes `PRAGMA integrity_check`;
- reports read finished runs only, and every finished run's results equal the uninterrupted run's.

An attempt that is not killed must finish with status 0 and results identical to the
uninterrupted run (rows and published images, byte for byte). A chain that finishes before its
kills are used starts a new episode from empty folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from cfanet.checkpoint import read_checkpoint
from cfanet.images import read_image
from grid_counts import paper_counts
from pipelines.cache import StageCache
from pipelines.store import ResultsStore

DRIVER = Path(__file__).resolve().parent / "reliability_driver.py"
SCENES, HR_SIZE = 2, 48
COUNTS = paper_counts()         # the default grid's pipelines, shared stages per scene, deep methods
STAGES = SCENES * COUNTS.stages_per_scene
DEEP_METHODS = COUNTS.deep_methods
KILLS, CHAINS, SEED = 20, 2, 20240611
TRAIN_SECONDS = 0.1             # stands for training time of each demo weights file


def _write_config(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "benchmark.toml"
    config.write_text(f"""
[profiles.demo]
output_dir = "out"
cache_dir = "cache"
[profiles.demo.dataset]
num_scenes = {SCENES}
hr_size = {HR_SIZE}
""")
    return config


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CFANET_BENCH_CONFIG"}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               RELIABILITY_TRAIN_SECONDS=str(TRAIN_SECONDS))
    return env


def _start(root: Path, log_name: str) -> subprocess.Popen:
    """`run-all` in its own process group; returns once it has printed `ready`."""
    config = root / "benchmark.toml"
    stderr = open(root / f"{log_name}.stderr", "w")
    process = subprocess.Popen([sys.executable, str(DRIVER), "--config", str(config), "run-all"],
                               stdout=subprocess.PIPE, stderr=stderr, text=True, env=_env(), cwd=root,
                               start_new_session=True)
    stderr.close()
    line = process.stdout.readline()
    assert line.strip() == "ready", f"driver did not start: {line!r} {(root / f'{log_name}.stderr').read_text()}"
    return process


def _stages_computed(out: str) -> int:
    """N from the summary line `run <id>: N of M stages computed ...`."""
    line = next(line for line in out.splitlines() if " stages computed " in line)
    return int(line.split(": ", 1)[1].split(" of ")[0])


def _finished_results(database: Path) -> dict[str, list[tuple]]:
    """Result rows of every finished run, sorted, by run id."""
    if not database.exists():
        return {}
    connection = sqlite3.connect(database)
    try:
        runs = [r[0] for r in connection.execute("SELECT run_id FROM runs WHERE status = 'finished'")]
        return {run: sorted(connection.execute("SELECT scene, method, metric, convention, value FROM results "
                                               "WHERE run_id = ?", (run,)).fetchall()) for run in runs}
    finally:
        connection.close()


def _images(root: Path) -> dict[str, str]:
    """SHA-256 of every published image (temporary files excluded)."""
    folder = root / "out" / "images"
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png")) if not p.name.startswith(".")}


def _finished_items(root: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of every finished item: complete stage entries (image and metadata),
    metric values and demo weights files."""
    items = {}
    stages = root / "cache" / "stages"
    if stages.is_dir():
        for key in StageCache(stages).keys():
            for suffix in (".png", ".json"):
                path = stages / key[:2] / f"{key}{suffix}"
                items[str(path)] = path
    for pattern in ("cache/metrics/??/*.json", "cache/demo_weights/*.pt"):
        for path in root.glob(pattern):
            if not path.name.startswith("."):
                items[str(path)] = path
    out = {}
    for name, path in items.items():
        stat = path.stat()
        out[name] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return out


def _check_everything_whole(root: Path, stats: Counter) -> None:
    """Every item that counts as written is complete and readable; the database is intact and
    gives finished runs only."""
    stages = root / "cache" / "stages"
    if stages.is_dir():
        cache = StageCache(stages)
        for key in cache.keys():
            image = read_image(stages / key[:2] / f"{key}.png")
            assert image.shape[:2] == (1, 3) and image.shape[-1] > 0
            assert json.loads((stages / key[:2] / f"{key}.json").read_text())["method"]
        temporaries = cache.temporaries()  # left by killed writers: hidden names, never an entry
        assert all(p.name.startswith(".") and p.name.endswith(".part") for p in temporaries)
        stats["orphan temporary files seen (never read)"] = max(stats["orphan temporary files seen (never read)"],
                                                               len(temporaries))
    for path in root.glob("cache/metrics/??/*.json"):
        if not path.name.startswith("."):
            assert isinstance(json.loads(path.read_text()), dict)
    for path in root.glob("cache/demo_weights/*.pt"):
        if not path.name.startswith("."):
            assert "state_dict" in read_checkpoint(path)
    database = root / "out" / "results.sqlite"
    if database.exists():
        with ResultsStore(database) as store:
            assert store.integrity_check() == "ok"
            latest = store.results()
            finished = [r for r in store.runs() if r["status"] == "finished"]
            assert latest.empty == (not finished)
        stats["database checks"] += 1


def _attempt_rows(database: Path, known_runs: set[str]) -> tuple[list[str], list[str]]:
    """Run ids started since `known_runs`, and the stage keys those runs computed (not cached)."""
    if not database.exists():
        return [], []
    connection = sqlite3.connect(database)
    try:
        runs = [r[0] for r in connection.execute("SELECT run_id FROM runs") if r[0] not in known_runs]
        computed = [k for run in runs for (k,) in connection.execute(
            "SELECT stage_key FROM stage_timings WHERE run_id = ? AND cached = 0", (run,))]
        return runs, computed
    finally:
        connection.close()


def _all_runs(database: Path) -> set[str]:
    if not database.exists():
        return set()
    connection = sqlite3.connect(database)
    try:
        return {r[0] for r in connection.execute("SELECT run_id FROM runs")}
    finally:
        connection.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted cold run: its results, images and duration after `ready`."""
    root = tmp_path_factory.mktemp("reference")
    _write_config(root)
    process = _start(root, "reference")
    start = time.monotonic()
    out, _ = process.communicate(timeout=600)
    seconds = time.monotonic() - start
    assert process.returncode == 0, (root / "reference.stderr").read_text()
    assert f"{STAGES} of {STAGES} stages computed" in out
    [rows] = _finished_results(root / "out" / "results.sqlite").values()
    images = _images(root)
    assert len(images) == SCENES * (COUNTS.pipelines + 5)  # every method + the scene's 5 inputs/references
    return {"rows": rows, "images": images, "seconds": seconds}


def _chain(index: int, kills_wanted: int, base: Path, reference: dict) -> Counter:
    rng = random.Random(SEED * 100 + index)
    stats: Counter = Counter()
    episode = 0
    while stats["kills"] < kills_wanted:
        root = base / f"chain{index}-episode{episode}"
        _write_config(root)
        database = root / "out" / "results.sqlite"
        while True:
            before = _finished_items(root)
            runs_before = _all_runs(database)
            complete_before = set(StageCache(root / "cache" / "stages").keys()) if (root / "cache").exists() else set()
            weights_before = len(list(root.glob("cache/demo_weights/*.pt")))
            final = stats["kills"] >= kills_wanted
            attempt = stats["attempts"]
            stats["attempts"] += 1
            process = _start(root, f"attempt{attempt}")
            if final:
                process.wait(timeout=600)
            else:
                try:
                    process.wait(timeout=rng.uniform(0.0, reference["seconds"]))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            out = process.stdout.read()
            process.stdout.close()
            killed = process.returncode == -signal.SIGKILL

            # 1. nothing finished before this attempt was written again
            after = _finished_items(root)
            rewritten = [name for name, ident in before.items() if after.get(name) != ident]
            new_runs, computed = _attempt_rows(database, runs_before)
            recomputed = sorted(set(computed) & complete_before)
            stats["finished items rewritten"] += len(rewritten)
            stats["stages recomputed"] += len(recomputed)
            assert not rewritten and not recomputed, (rewritten, recomputed)
            stats["stages computed (all attempts)"] += len(computed)
            # 2. everything that counts as written is whole; the database is intact
            _check_everything_whole(root, stats)
            # 3. every finished run, in any attempt so far, has the uninterrupted run's results
            for rows in _finished_results(database).values():
                assert rows == reference["rows"]
            if killed:
                stats["kills"] += 1
                complete = len(StageCache(root / "cache" / "stages").keys()) if (root / "cache").exists() else 0
                weights = len(list(root.glob("cache/demo_weights/*.pt")))
                if not new_runs:
                    phase = ("making demo weights" if weights > weights_before or weights < DEEP_METHODS
                             else "checking scenes, loading models")
                elif complete < STAGES:
                    phase = "computing stages"
                else:
                    phase = "scoring, publishing, recording"
                stats[f"phase: {phase}"] += 1
                continue
            assert process.returncode == 0, (root / f"attempt{attempt}.stderr").read_text()
            assert f"of {STAGES} stages computed" in out
            assert _images(root) == reference["images"]
            stats["completed runs identical to the uninterrupted run"] += 1
            break
        stats["episodes"] += 1
        episode += 1
    return stats


def test_run_all_survives_random_sigkills_and_resumes_identically(tmp_path, reference):
    start = time.monotonic()
    with ThreadPoolExecutor(CHAINS) as pool:
        futures = [pool.submit(_chain, i, KILLS // CHAINS, tmp_path, reference) for i in range(CHAINS)]
        stats = sum((f.result() for f in futures), Counter())
    seconds = time.monotonic() - start
    assert stats["kills"] == KILLS
    assert stats["stages recomputed"] == 0 and stats["finished items rewritten"] == 0
    assert stats["completed runs identical to the uninterrupted run"] == stats["episodes"] >= CHAINS
    phases = {k.split(": ", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("phase: ")}
    print(f"\nkill/resume figures ({seconds:.0f} s): {stats['kills']} SIGKILLs survived over {stats['attempts']} "
          f"attempts in {stats['episodes']} episodes; kills by phase: {phases}; "
          f"finished stages recomputed after a kill: {stats['stages recomputed']}; finished items rewritten: "
          f"{stats['finished items rewritten']}; stages computed in all attempts: "
          f"{stats['stages computed (all attempts)']} for {stats['episodes']} x {STAGES} needed; "
          f"orphan temporary files seen at most: {stats['orphan temporary files seen (never read)']} (never read); "
          f"database integrity checks passed: {stats['database checks']}; completed runs identical to the "
          f"uninterrupted run: {stats['completed runs identical to the uninterrupted run']}")


def test_two_concurrent_run_alls_share_cache_and_database(tmp_path, reference):
    root = tmp_path / "shared"
    _write_config(root)
    processes = [_start(root, f"process{i}") for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for i, process in enumerate(processes):
        assert process.returncode == 0, (root / f"process{i}.stderr").read_text()
    database = root / "out" / "results.sqlite"
    finished = _finished_results(database)
    assert len(finished) == 2 and all(rows == reference["rows"] for rows in finished.values())
    with ResultsStore(database) as store:
        assert store.integrity_check() == "ok"
        assert [r["status"] for r in store.runs()] == ["finished", "finished"]
    connection = sqlite3.connect(database)
    computed = connection.execute("SELECT COUNT(*), COUNT(DISTINCT stage_key) FROM stage_timings "
                                  "WHERE cached = 0").fetchone()
    connection.close()
    # the stage lock: each stage computed by exactly one of the two processes
    assert computed == (STAGES, STAGES)
    cache = StageCache(root / "cache" / "stages")
    assert len(cache.keys()) == STAGES and cache.temporaries() == []
    assert len(list(root.glob("cache/demo_weights/*.pt"))) == DEEP_METHODS
    assert _images(root) == reference["images"]
    per_process = [_stages_computed(out) for out in outputs]
    assert sum(per_process) == STAGES
    print(f"\nconcurrency figures: 2 run-all processes on one cache and database both finished; stages computed "
          f"{per_process[0]} + {per_process[1]} = {STAGES} (none twice); both runs' {len(reference['rows'])} result "
          f"rows identical to a single run; images identical; integrity_check ok; no temporary files left")


def test_sigterm_stops_a_run_cleanly_and_the_rerun_resumes(tmp_path, reference):
    """Schedulers send SIGTERM before SIGKILL: the run stops like Ctrl-C, is recorded as
    interrupted (never read as a result), and the next run computes only what is missing."""
    _write_config(tmp_path)
    stages = tmp_path / "cache" / "stages"
    process = _start(tmp_path, "terminated")
    deadline = time.monotonic() + 300
    while (time.monotonic() < deadline and process.poll() is None
           and (not stages.is_dir() or len(StageCache(stages).keys()) < 10)):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=300)
    stderr = (tmp_path / "terminated.stderr").read_text()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: finished stages are kept")
    done = len(StageCache(stages).keys())
    assert 10 <= done < STAGES
    with ResultsStore(tmp_path / "out" / "results.sqlite") as store:
        [run] = store.runs()
        assert run["status"] == "interrupted" and store.results().empty
    again = _start(tmp_path, "resumed")
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0
    assert _stages_computed(out) == STAGES - done
    [rows] = _finished_results(tmp_path / "out" / "results.sqlite").values()
    assert rows == reference["rows"]


def _training_config(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmark.toml").write_text("""
[profiles.demo]
output_dir = "out"
cache_dir = "cache"
[profiles.demo.dataset]
num_scenes = 1
hr_size = 48
[profiles.demo.demo_training]
steps = 30
patch_size = 16
batch_size = 2
""")


def _cli(root: Path) -> subprocess.Popen:
    env = {k: v for k, v in _env().items() if k != "RELIABILITY_TRAIN_SECONDS"}
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "--config", "benchmark.toml", "run", "SRFBN+MGFF"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)


def test_a_kill_during_real_demo_training_resumes_to_the_same_weights(tmp_path):
    """The real trainer (not a stand-in): killed after its first checkpoint (step 25 of 30), the
    next run resumes the training from it and ends with the very weights and results of an
    uninterrupted run."""
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        _training_config(root)
    reference = _cli(clean)
    reference.communicate(timeout=600)
    assert reference.returncode == 0
    [clean_weights] = clean.glob("cache/demo_weights/SRFBN_x2_*.pt")

    process = _cli(killed)
    checkpoint = killed / "cache" / "demo_weights" / f"{clean_weights.stem}_training" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not checkpoint.exists():
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the training finished before the kill"
    assert not (killed / "cache" / "demo_weights" / clean_weights.name).exists()
    assert read_checkpoint(checkpoint)["step"] == 25
    resumed = _cli(killed)
    resumed.communicate(timeout=600)
    assert resumed.returncode == 0
    # the same parameters, bit for bit (the files differ only in their recorded training time)
    weights = read_checkpoint(killed / "cache" / "demo_weights" / clean_weights.name)["state_dict"]
    expected = read_checkpoint(clean_weights)["state_dict"]
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected)
    assert list(_finished_results(killed / "out" / "results.sqlite").values()) == \
        list(_finished_results(clean / "out" / "results.sqlite").values())
