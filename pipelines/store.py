"""Results store: one SQLite database (WAL mode) with a row per (run, scene, method, metric,
convention) and a manifest per run (package versions, git commit, config hash, weights hashes,
device, per-stage timings). Reports read it through pandas and never need torch.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

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
    PRIMARY KEY (run_id, stage_key)
);
"""


class ResultsStore:
    """The results database at `path` (created on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, timeout=30)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(SCHEMA)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start_run(self, profile: str, manifest: dict) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._connection:
            self._connection.execute("INSERT INTO runs VALUES (?, ?, ?, NULL, 'running', ?)",
                                     (run_id, profile, time.time(), json.dumps(manifest, default=str)))
        return run_id

    def finish_run(self, run_id: str, manifest: dict, status: str = "finished") -> None:
        with self._connection:
            self._connection.execute("UPDATE runs SET finished = ?, status = ?, manifest = ? WHERE run_id = ?",
                                     (time.time(), status, json.dumps(manifest, default=str), run_id))

    def record_results(self, run_id: str, rows: Iterable[tuple[str, str, str, str, float]]) -> None:
        """Insert or replace (scene, method, metric, convention, value) rows of a run."""
        with self._connection:
            self._connection.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                                         [(run_id, *row) for row in rows])

    def record_timing(self, run_id: str, stage_key: str, method: str, scene: str, seconds: float, cached: bool) -> None:
        with self._connection:
            self._connection.execute("INSERT OR REPLACE INTO stage_timings VALUES (?, ?, ?, ?, ?, ?)",
                                     (run_id, stage_key, method, scene, seconds, int(cached)))

    def runs(self) -> list[dict]:
        cursor = self._connection.execute("SELECT run_id, profile, started, finished, status, manifest FROM runs "
                                          "ORDER BY started")
        return [dict(zip(("run_id", "profile", "started", "finished", "status", "manifest"), row)) for row in cursor]

    def results(self, run_id: str | None = None):
        """A pandas DataFrame of the results of `run_id` (default: the latest finished run)."""
        import pandas as pd

        if run_id is None:
            row = self._connection.execute("SELECT run_id FROM runs WHERE status = 'finished' "
                                           "ORDER BY finished DESC LIMIT 1").fetchone()
            if row is None:
                return pd.DataFrame(columns=["run_id", "scene", "method", "metric", "convention", "value"])
            run_id = row[0]
        return pd.read_sql_query("SELECT * FROM results WHERE run_id = ?", self._connection, params=(run_id,))
