"""Results store: one SQLite database (WAL mode) with a row per (run, scene, method, metric,
convention) and a manifest per run (package versions, git commit, config hash, weights hashes,
device, per-stage timings). Reports read it through pandas and never need torch.

Safe under kills and concurrent writers: every write is one transaction (a killed process leaves
the database as it was before the transaction), WAL mode lets readers work while a writer
commits, and a writer that finds the database locked by another process waits (SQLite's busy
timeout) and then retries with backoff for up to `retry_seconds` before giving up. A run killed
before it finished stays with status `running` (or `failed` / `interrupted` when it could say so);
`results()` reads finished runs only, so a partial run is never mistaken for a result.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, profile TEXT NOT NULL, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL, manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id), scene TEXT NOT NULL, method TEXT NOT NULL,
    metric TEXT NOT NULL, convention TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, scene, method, metric, convention)
);
CREATE TABLE IF NOT EXISTS stage_timings (
    run_id TEXT NOT NULL REFERENCES runs(run_id), stage_key TEXT NOT NULL, method TEXT NOT NULL,
    scene TEXT NOT NULL, seconds REAL NOT NULL, cached INTEGER NOT NULL,
    scale INTEGER, inputs TEXT,
    PRIMARY KEY (run_id, stage_key)
);
"""
# Columns added after the first release, with their types: a database made before gets them on open
# (NULL in old rows). `scale` and `inputs` (a JSON list of the stage's input keys: image keys or other
# stages' keys) let the reports attribute stage times to pipelines whatever order stages ran in.
ADDED_COLUMNS = {"stage_timings": (("scale", "INTEGER"), ("inputs", "TEXT"))}


def is_busy_error(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database is busy" errors (another writer holds it)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def with_retries(operation: Callable[[], T], retry_seconds: float = 600.0, first_delay: float = 0.02) -> T:
    """Run `operation`, retrying with jittered exponential backoff (at most 1 s between tries) while
    SQLite reports the database locked or busy, for up to `retry_seconds` in all."""
    deadline = time.monotonic() + retry_seconds
    delay = first_delay
    while True:
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            if not is_busy_error(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)


class StoreError(ValueError):
    """The results database cannot be used (not a database, damaged, not writable); names the file."""


class ResultsStore:
    """The results database at `path` (created on first use).

    `timeout` is SQLite's busy timeout per statement (seconds); `retry_seconds` how long a write
    keeps retrying after that while other processes hold the database.
    """

    def __init__(self, path: str | Path, timeout: float = 30.0, retry_seconds: float = 600.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retry_seconds = retry_seconds
        self._connection = sqlite3.connect(self.path, timeout=timeout)
        try:
            self._retry(lambda: self._connection.execute("PRAGMA journal_mode=WAL").fetchone())
            self._retry(lambda: self._connection.executescript(SCHEMA))
            self._retry(self._add_columns)
        except sqlite3.DatabaseError as exc:
            self._connection.close()
            if isinstance(exc, sqlite3.OperationalError) and is_busy_error(exc):
                raise
            raise StoreError(f"{self.path}: the results database cannot be used ({exc}); move it aside (the stage "
                             f"and metric caches keep every computed result, so a rerun rebuilds it quickly)") from exc
        except BaseException:
            self._connection.close()
            raise

    def _add_columns(self) -> None:
        """Bring a database made by an older version to the current columns (`ADDED_COLUMNS`)."""
        for table, columns in ADDED_COLUMNS.items():
            present = {row[1] for row in self._connection.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in present:
                    try:
                        with self._connection:
                            self._connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as exc:
                        if "duplicate column" not in str(exc).lower():  # another process added it first
                            raise

    def _retry(self, operation: Callable[[], T]) -> T:
        """`operation` retried while the database is locked; any other database failure (disk full,
        damaged file, read-only) is a StoreError naming the file."""
        try:
            return with_retries(operation, self.retry_seconds)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and is_busy_error(exc):
                raise
            message = str(exc)
            hint = ("free space on that disk or choose another output_dir; every stage and metric computed so far "
                    "is kept in the cache" if "full" in message else
                    "move it aside (the stage and metric caches keep every computed result)")
            raise StoreError(f"{self.path}: {message}; {hint}") from exc

    def _write(self, sql: str, parameters=(), many: bool = False) -> None:
        """One statement in its own transaction, retried while the database is locked."""
        def run():
            with self._connection:  # commits, or rolls back on error
                if many:
                    self._connection.executemany(sql, parameters)
                else:
                    self._connection.execute(sql, parameters)
        self._retry(run)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start_run(self, profile: str, manifest: dict) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:12]
        self._write("INSERT INTO runs VALUES (?, ?, ?, NULL, 'running', ?)",
                    (run_id, profile, time.time(), json.dumps(manifest, default=str)))
        return run_id

    def finish_run(self, run_id: str, manifest: dict, status: str = "finished") -> None:
        """Close a run: `finished`, or `failed` / `interrupted` (which `results()` never reads)."""
        self._write("UPDATE runs SET finished = ?, status = ?, manifest = ? WHERE run_id = ?",
                    (time.time(), status, json.dumps(manifest, default=str), run_id))

    def record_results(self, run_id: str, rows: Iterable[tuple[str, str, str, str, float]]) -> None:
        """Insert or replace (scene, method, metric, convention, value) rows of a run (one transaction)."""
        self._write("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)", [(run_id, *row) for row in rows],
                    many=True)

    def record_timing(self, run_id: str, stage_key: str, method: str, scene: str, seconds: float, cached: bool,
                      *, scale: int | None = None, inputs: Iterable[str] | None = None) -> None:
        """One stage of a run: the component that ran, the scene, its seconds (0 when `cached`), and
        (for the reports' runtime attribution) the scale and the stage's input keys."""
        self._write("INSERT OR REPLACE INTO stage_timings (run_id, stage_key, method, scene, seconds, cached, scale, "
                    "inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, stage_key, method, scene, seconds, int(cached), None if scale is None else int(scale),
                     None if inputs is None else json.dumps(list(inputs))))

    def runs(self) -> list[dict]:
        rows = self._retry(lambda: self._connection.execute(
            "SELECT run_id, profile, started, finished, status, manifest FROM runs ORDER BY started").fetchall())
        return [dict(zip(("run_id", "profile", "started", "finished", "status", "manifest"), row)) for row in rows]

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check`: "ok" for an undamaged database."""
        return self._retry(lambda: self._connection.execute("PRAGMA integrity_check").fetchone()[0])

    def results(self, run_id: str | None = None):
        """A pandas DataFrame of the results of `run_id` (default: the latest finished run)."""
        import pandas as pd

        if run_id is None:
            row = self._retry(lambda: self._connection.execute(
                "SELECT run_id FROM runs WHERE status = 'finished' ORDER BY finished DESC LIMIT 1").fetchone())
            if row is None:
                return pd.DataFrame(columns=["run_id", "scene", "method", "metric", "convention", "value"])
            run_id = row[0]
        return self._retry(lambda: pd.read_sql_query("SELECT * FROM results WHERE run_id = ?", self._connection,
                                                     params=(run_id,)))
