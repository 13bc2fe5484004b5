"""Stage cache (content-addressed, atomic) and results store (SQLite WAL)."""

import sqlite3

import torch

from pipelines.cache import StageCache, image_key, stage_key
from pipelines.store import ResultsStore


def test_stage_key_depends_on_everything():
    base = dict(method="RCAN", config={"size": "small"}, weights_sha256="ab", inputs=["k1"], code_version="1")
    key = stage_key(**base)
    assert key == stage_key(**base) and len(key) == 64
    for field, other in (("method", "SRFBN"), ("config", {"size": "official"}), ("weights_sha256", "cd"),
                         ("inputs", ["k2"]), ("code_version", "2")):
        assert stage_key(**{**base, field: other}) != key


def test_image_key_is_content_based():
    a = torch.rand(1, 3, 8, 8)
    assert image_key(a) == image_key(a.clone())
    b = a.clone()
    b[0, 0, 0, 0] = (torch.round(a[0, 0, 0, 0] * 255) + 1) % 256 / 255
    assert image_key(b) != image_key(a)


def test_cache_roundtrip_quantises_and_survives_damage(tmp_path):
    cache = StageCache(tmp_path)
    out = torch.rand(1, 3, 6, 5)
    assert cache.get("ab" * 32) is None and not cache.has("ab" * 32)
    stored = cache.put("ab" * 32, out, {"seconds": 1.5})
    assert cache.has("ab" * 32) and cache.metadata("ab" * 32)["seconds"] == 1.5
    assert torch.equal(cache.get("ab" * 32), stored)
    assert (stored - out).abs().max() <= 0.5 / 255 + 1e-6
    assert [p.name for p in (tmp_path / "ab").iterdir() if p.name.startswith(".")] == []
    (tmp_path / "ab" / f"{'ab' * 32}.png").write_bytes(b"broken")
    assert cache.get("ab" * 32) is None and not cache.has("ab" * 32)


def test_entry_without_metadata_counts_as_missing(tmp_path):
    cache = StageCache(tmp_path)
    cache.put("cd" * 32, torch.rand(1, 3, 4, 4), {})
    (tmp_path / "cd" / f"{'cd' * 32}.json").unlink()
    assert not cache.has("cd" * 32) and cache.get("cd" * 32) is None


def test_results_store(tmp_path):
    with ResultsStore(tmp_path / "results.sqlite") as store:
        run = store.start_run("demo", {"git": "abc"})
        store.record_results(run, [("s1", "RCAN+MGFF", "psnr", "paper", 20.5), ("s1", "RCAN+MGFF", "psnr", "sr", 21.0)])
        store.record_results(run, [("s1", "RCAN+MGFF", "psnr", "paper", 20.7)])  # replaced, not duplicated
        store.record_timing(run, "k" * 64, "RCAN", "s1", 0.25, cached=False)
        assert store.results().empty  # the run has not finished
        store.finish_run(run, {"git": "abc", "seconds": 3})
        frame = store.results()
        assert len(frame) == 2 and frame.set_index("convention").loc["paper", "value"] == 20.7
        assert store.runs()[0]["status"] == "finished"
    mode = sqlite3.connect(tmp_path / "results.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_results_store_adds_the_timing_columns_to_an_older_database(tmp_path):
    """A database made before stage timings recorded scale and inputs gets the columns on open (NULL
    in the old rows); new rows carry them."""
    import json

    path = tmp_path / "results.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, profile TEXT NOT NULL, started REAL NOT NULL, finished REAL,
                           status TEXT NOT NULL, manifest TEXT NOT NULL);
        CREATE TABLE stage_timings (run_id TEXT NOT NULL, stage_key TEXT NOT NULL, method TEXT NOT NULL,
                                    scene TEXT NOT NULL, seconds REAL NOT NULL, cached INTEGER NOT NULL,
                                    PRIMARY KEY (run_id, stage_key));
        INSERT INTO runs VALUES ('r0', 'demo', 0, 1, 'finished', '{}');
        INSERT INTO stage_timings VALUES ('r0', 'old', 'RCAN', 's1', 0.5, 0);
    """)
    old.close()
    for _ in range(2):  # opening again finds the columns there
        with ResultsStore(path) as store:
            run = store.start_run("demo", {})
            store.record_timing(run, "new" + run, "MGFF", "s1", 0.25, cached=False, scale=2, inputs=["a", "b"])
    rows = sqlite3.connect(path).execute("SELECT stage_key, scale, inputs FROM stage_timings ORDER BY rowid").fetchall()
    assert rows[0] == ("old", None, None)
    assert [(scale, json.loads(inputs)) for _, scale, inputs in rows[1:]] == [(2, ["a", "b"])] * 2
