"""The pieces that make kills and concurrent runs safe, one at a time: a writer killed in the
middle of a cache write, SQLite locked by another process, the stage lock, atomic publishing,
output paths that cannot leave the output folder, and hostile checkpoints."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from cfanet.checkpoint import CheckpointError, read_checkpoint
from cfanet.data.scene import DatasetError, check_scene_name, scene_name_problem
from pipelines.cache import StageCache, file_lock
from pipelines.store import ResultsStore, with_retries


def _die_during(step: str, root: Path) -> subprocess.CompletedProcess:
    """A process that SIGKILLs itself inside `StageCache.put`, at the rename of the image or of the
    metadata, so the temporary file it was writing stays behind as a real kill leaves it."""
    script = textwrap.dedent(f"""
        import os, signal, torch
        from pipelines.cache import StageCache
        calls = []
        real_replace = os.replace
        def replace(src, dst):
            calls.append(dst)
            if str(dst).endswith({step!r}):
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)
        os.replace = replace
        StageCache({str(root)!r}).put("ab" * 32, torch.rand(1, 3, 8, 8), {{"method": "x"}})
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("step", [".png", ".json"])
def test_a_writer_killed_inside_put_leaves_no_entry(tmp_path, step):
    result = _die_during(step, tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    cache = StageCache(tmp_path)
    assert cache.keys() == [] and not cache.has("ab" * 32) and cache.get("ab" * 32) is None
    leftovers = cache.temporaries()
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".") and leftovers[0].suffix == ".part"
    assert cache.remove_stale_temporaries(older_than=3600) == 0  # might be a live writer's
    assert cache.remove_stale_temporaries(older_than=0) == 1 and cache.temporaries() == []
    cache.put("ab" * 32, torch.rand(1, 3, 8, 8), {"method": "x"})
    assert cache.keys() == ["ab" * 32]


def test_a_transaction_killed_before_commit_leaves_the_database_as_it_was(tmp_path):
    database = tmp_path / "results.sqlite"
    with ResultsStore(database) as store:
        run = store.start_run("demo", {})
        store.record_results(run, [("s", "m", "psnr", "paper", 1.0)])
    script = textwrap.dedent(f"""
        import os, signal, sqlite3
        connection = sqlite3.connect({str(database)!r})
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)",
                               [({run!r}, f"s{{i}}", "m", "psnr", "paper", 2.0) for i in range(1000)])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == -signal.SIGKILL
    with ResultsStore(database) as store:
        assert store.integrity_check() == "ok"
        assert store.results().empty  # the run never finished: reports do not read it
        assert store.runs()[0]["status"] == "running"
    rows = sqlite3.connect(database).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert rows == 1


def test_writes_wait_and_retry_while_another_process_holds_the_database(tmp_path):
    database = tmp_path / "results.sqlite"
    ResultsStore(database).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        connection = sqlite3.connect({str(database)!r}, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep(1.5)
        connection.execute("COMMIT")
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    start = time.monotonic()
    # a busy timeout much shorter than the lock: the retry wrapper carries the write through
    with ResultsStore(database, timeout=0.05) as store:
        run = store.start_run("demo", {})
        store.record_results(run, [("s", "m", "psnr", "paper", 1.0)])
        store.finish_run(run, {})
        assert len(store.results()) == 1
    assert time.monotonic() - start > 0.5
    holder.wait(timeout=60)


def test_retries_give_up_after_their_time_and_other_errors_are_not_retried():
    calls = []

    def locked():
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        with_retries(locked, retry_seconds=0.3)
    assert time.monotonic() - start < 3 and len(calls) > 2  # retried with backoff, then gave up
    calls.clear()

    def broken():
        calls.append(1)
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with_retries(broken)
    assert len(calls) == 1


def test_stage_lock_serialises_holders(tmp_path):
    cache = StageCache(tmp_path)
    inside, overlaps = [], []

    def work():
        with cache.lock("cd" * 32):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.1)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1, 1, 1, 1]


def test_a_lock_held_by_a_killed_process_is_released(tmp_path):
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pipelines.cache import file_lock
        with file_lock({str(lock)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    start = time.monotonic()
    with file_lock(lock):
        pass
    assert time.monotonic() - start < 5


def test_scene_names_that_could_leave_the_output_folder_are_refused():
    for name in ("../evil", "a/../b", "a//b", "/abs", "a/", "a/.hidden", "..", ".", "", "a\\..\\b", "x\x00y",
                 "line\nbreak", ".hidden", "é" * 150):
        assert scene_name_problem(name), name
        with pytest.raises(DatasetError, match="cannot be used in output file names"):
            check_scene_name(name, "somewhere")
    for name in ("coffee-00", "<img src=x onerror=alert(1)>", "a&b \"quoted\" 'x'", "scène 1", "0001", "Part1/12"):
        assert scene_name_problem(name) is None, name


def test_runner_output_paths_stay_inside_the_output_folder(tmp_path):
    from test_runner import _runner

    runner = _runner(tmp_path)
    assert runner.publisher.output_path("images", "x2", "MGFF", "a.png") == tmp_path / "out" / "images" / "x2" / "MGFF" / "a.png"
    for parts in (("images", "x2", "..", "..", "..", "evil.png"), ("images", "x2", "MGFF", "../../evil.png"),
                  ("images", "/etc/passwd"), ("images", "a\\..\\b.png")):
        with pytest.raises(DatasetError, match="output folder"):
            runner.publisher.output_path(*parts)


def test_publish_is_atomic_and_replaces_a_stale_image(tmp_path):
    from test_runner import _runner

    runner = _runner(tmp_path)
    runner.cache.put("ef" * 32, torch.rand(1, 3, 4, 4), {})
    target = runner.publisher.output_path("images", "x2", "M", "s.png")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")
    runner.publisher.publish("ef" * 32, target)
    assert target.read_bytes() == (runner.cache.root / "ef" / f"{'ef' * 32}.png").read_bytes()
    assert not os.path.samefile(target, runner.cache.root / "ef" / f"{'ef' * 32}.png")  # a copy
    runner.publisher.publish("ef" * 32, target)  # already in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["s.png"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_whose_pickle_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_checkpoint(evil)
    assert not marker.exists()
    # and a plain pickle file named .pt (no zip container) is refused the same way
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError):
        read_checkpoint(plain)
    assert not marker.exists()
