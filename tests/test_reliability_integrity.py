"""Issue 15, items 1-3: no silent wrong result from published images or caches.

1. Published scene images (`images/x<s>/_scene/<role>/<scene>.png`) follow the scene: changed inputs,
   or a damaged published file, are rewritten on the next run.
2. A published final image edited in place (it is a hard link to the cache entry) never reaches a
   later run: the entry fails its checksum, is recomputed with a warning, and republished.
3. Cache entries and metric cache files are verified on read: a stage PNG replaced by another valid
   PNG, or a rewritten metric cache file, is recomputed in the same run with a warning, and the
   results equal the original run's.
Plus: concurrent publishing of one target leaves no `.part` temporary files.

End to end through the CLI (`cfanet-bench run`) on a 2-scene `triples` folder of 48x48 images with
seeded demo weights; a few pipelines only (MGFF+SRFBN, CF-Net), so each test takes seconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipelines.cache import CacheIntegrityWarning, StageCache, encode_png
from pipelines.cli import main
from pipelines.publishing import Publisher

PIPELINES = ["MGFF+SRFBN", "CF-Net"]
STAGES = 2 * 3  # per scene: MGFF on the LR pair, SRFBN on its output, CF-Net


@pytest.fixture
def seeded(monkeypatch):
    import pipelines.demo_training
    from pipelines.demo_training import seeded_demo_weights

    monkeypatch.setattr(pipelines.demo_training, "train_demo_weights", seeded_demo_weights)


def _image(path: Path, level: float, seed: int, size: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    array = np.clip(rng.integers(0, 64, (size, size, 3)) + int(level * 255 * 0.7), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _scene(data: Path, name: str, seed: int) -> dict[str, Path]:
    return {role: _image(data / role / f"{name}.png", level, seed * 10 + i)
            for i, (role, level) in enumerate((("over", 0.9), ("under", 0.1), ("gt", 0.5)))}


def _bench(tmp_path: Path, output: str = "out") -> Path:
    config = tmp_path / f"{output}.toml"
    config.write_text("\n".join([
        'default_profile = "bench"', "[profiles.bench]", f'output_dir = "{tmp_path / output}"',
        f'cache_dir = "{tmp_path / "cache"}"', "[profiles.bench.dataset]", 'kind = "triples"',
        f'root = "{tmp_path / "data"}"']) + "\n")
    return config


def _run(capsys, config: Path) -> tuple[str, str]:
    code = main(["--config", str(config), "run", *PIPELINES])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


def _results(output: Path) -> list[list[tuple]]:
    """Every finished run's results (sorted), oldest first."""
    connection = sqlite3.connect(output / "results.sqlite")
    try:
        runs = [r for (r,) in connection.execute("SELECT run_id FROM runs WHERE status = 'finished' ORDER BY rowid")]
        return [sorted(connection.execute("SELECT scene, method, metric, convention, value FROM results "
                                          "WHERE run_id = ?", (run,)).fetchall()) for run in runs]
    finally:
        connection.close()


def _last_manifest(output: Path) -> dict:
    connection = sqlite3.connect(output / "results.sqlite")
    try:
        return json.loads(connection.execute("SELECT manifest FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0])
    finally:
        connection.close()


def _entry_files(tmp_path: Path) -> dict[str, bytes]:
    cache = StageCache(tmp_path / "cache" / "stages")
    return {key: (cache.root / key[:2] / f"{key}.png").read_bytes() for key in cache.keys()}


def _pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _other_png(like: Path) -> bytes:
    """A valid PNG of the same size as `like`, with other pixels."""
    shape = _pixels(like).shape
    ok, data = cv2.imencode(".png", np.full(shape, 200, np.uint8))
    assert ok
    return data.tobytes()


def _draw_in_place(path: Path, data: bytes) -> None:
    """What an image editor saving over the file does: rewrite the same inode."""
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(data)


# ------------------------------------------------------------------------------------------------
# 1. published scene images follow the scene


def test_changed_scene_images_are_republished(tmp_path, capsys, seeded):
    data = tmp_path / "data"
    _scene(data, "a", 1), _scene(data, "b", 2)
    config = _bench(tmp_path)
    _run(capsys, config)
    published = tmp_path / "out" / "images" / "x2" / "_scene"
    gt, over = published / "gt" / "a.png", published / "over" / "a.png"
    old_gt, old_over, old_b = gt.read_bytes(), over.read_bytes(), (published / "gt" / "b.png").read_bytes()
    assert np.array_equal(_pixels(gt), _pixels(data / "gt" / "a.png"))

    new = _scene(data, "a", 7)  # the scene's images change
    out, _ = _run(capsys, config)
    assert f"3 of {STAGES} stages computed" in out  # scene a's stages only
    assert np.array_equal(_pixels(gt), _pixels(new["gt"])) and gt.read_bytes() != old_gt
    assert over.read_bytes() != old_over
    assert (published / "gt" / "b.png").read_bytes() == old_b  # scene b unchanged
    # the published LR input is the one the stages read: the PNG of the scene's current LR image
    from cfanet.data import open_dataset

    scene = open_dataset("triples", 2, root=data).load("a")
    assert over.read_bytes() == encode_png(scene.over)[0]

    # a damaged published scene image is repaired by the next run (nothing recomputed)
    good = over.read_bytes()
    over.write_bytes(b"not a png")
    (published / "under" / "b.png").unlink()
    out, _ = _run(capsys, config)
    assert f"0 of {STAGES} stages computed" in out
    assert over.read_bytes() == good and (published / "under" / "b.png").is_file()
    assert not list(published.rglob(".*.part"))


# ------------------------------------------------------------------------------------------------
# 2. an edit of a published final image does not poison later runs


def test_drawing_on_a_published_image_does_not_reach_a_new_output_folder(tmp_path, capsys, seeded):
    _scene(tmp_path / "data", "a", 1), _scene(tmp_path / "data", "b", 2)
    _run(capsys, _bench(tmp_path, "out"))
    entries = _entry_files(tmp_path)
    published = tmp_path / "out" / "images" / "x2" / "MGFF+SRFBN" / "a.png"
    original = published.read_bytes()
    _draw_in_place(published, _other_png(published))

    out, err = _run(capsys, _bench(tmp_path, "out2"))
    # published images are copies: the drawing never reached the cache
    assert "warning:" not in err and f"0 of {STAGES} stages computed" in out
    again = tmp_path / "out2" / "images" / "x2" / "MGFF+SRFBN" / "a.png"
    assert again.read_bytes() == original  # the correct stage output, not the drawing
    assert _entry_files(tmp_path) == entries  # every cache entry intact (the damaged one recomputed)
    assert _results(tmp_path / "out2") == _results(tmp_path / "out")
    # and a third run reads it as it is, silently
    out, err = _run(capsys, _bench(tmp_path, "out2"))
    assert f"0 of {STAGES} stages computed" in out and "warning:" not in err


def test_copy_publishing_keeps_the_cache_out_of_reach(tmp_path):
    cache = StageCache(tmp_path / "cache")
    cache.put("ef" * 32, torch.rand(1, 3, 8, 8), {})
    entry = cache.root / "ef" / f"{'ef' * 32}.png"
    stored = entry.read_bytes()
    target = tmp_path / "out" / "M" / "s.png"
    Publisher(tmp_path / "out", cache.root, link=True).publish("ef" * 32, target)  # optional: a hard link
    assert os.path.samefile(entry, target)
    copying = Publisher(tmp_path / "out", cache.root)  # the default: copies
    copying.publish("ef" * 32, target)  # the link is replaced by a copy
    assert not os.path.samefile(entry, target) and target.read_bytes() == stored
    _draw_in_place(target, _other_png(target))
    assert entry.read_bytes() == stored and cache.has("ef" * 32)
    copying.publish("ef" * 32, target)
    assert target.read_bytes() == stored
    assert sorted(p.name for p in target.parent.iterdir()) == ["s.png"]


# ------------------------------------------------------------------------------------------------
# 3. verified reads: stage cache and metric cache


def test_a_cached_stage_replaced_by_another_png_is_recomputed(tmp_path, capsys, seeded):
    _scene(tmp_path / "data", "a", 1), _scene(tmp_path / "data", "b", 2)
    config = _bench(tmp_path)
    _run(capsys, config)
    entries = _entry_files(tmp_path)
    cache = StageCache(tmp_path / "cache" / "stages")
    # an intermediate (MGFF on scene a's LR pair, read by SRFBN) and a final image (CF-Net on b)
    chosen = {}
    for key in cache.keys():
        meta = cache.metadata(key)
        if (meta["method"], meta["scene"]) in (("MGFF", "a"), ("CF-Net", "b")):
            chosen[meta["method"]] = key
    assert len(chosen) == 2
    for key in chosen.values():
        path = cache.root / key[:2] / f"{key}.png"
        path.write_bytes(_other_png(path))  # another valid PNG of the same size

    out, err = _run(capsys, config)
    for key in chosen.values():
        assert key in err  # the warning names the key (and its file)
    assert err.count("warning:") == 2 and "damaged" in err
    assert f"2 of {STAGES} stages computed" in out
    assert _last_manifest(tmp_path / "out")["stages_computed"] == 2
    assert _entry_files(tmp_path) == entries
    first, second = _results(tmp_path / "out")
    assert second == first


def test_a_rewritten_metric_cache_file_is_recomputed(tmp_path, capsys, seeded):
    _scene(tmp_path / "data", "a", 1), _scene(tmp_path / "data", "b", 2)
    config = _bench(tmp_path)
    _run(capsys, config)
    files = sorted((tmp_path / "cache" / "metrics").rglob("*.json"))
    assert len(files) == 4  # 2 pipelines x 2 scenes
    intact = {path: path.read_bytes() for path in files}
    record = json.loads(files[0].read_text())
    name = next(iter(record["values"]))
    record["values"][name] += 1.0  # a plausible but wrong value
    files[0].write_text(json.dumps(record))
    files[1].write_text("{not json")
    files[2].write_text(json.dumps(record))  # another key's record

    out, err = _run(capsys, config)
    assert f"0 of {STAGES} stages computed" in out
    assert err.count("warning:") == 3 and all(str(path) in err for path in files[:3])
    first, second = _results(tmp_path / "out")
    assert second == first
    assert {path: path.read_bytes() for path in files} == intact  # rewritten as they were


def test_stage_cache_verifies_on_read(tmp_path):
    cache = StageCache(tmp_path)
    key, other = "ab" * 32, "cd" * 32
    stored = cache.put(key, torch.rand(1, 3, 6, 5), {"seconds": 1.0})
    cache.put(other, torch.rand(1, 3, 6, 5), {})
    meta = cache.metadata(key)
    assert meta["seconds"] == 1.0 and meta["key"] == key and len(meta["png_sha256"]) == 64
    assert cache.has(key) and torch.equal(cache.get(key), stored)
    image = tmp_path / "ab" / f"{key}.png"
    # another valid PNG under this key: dropped with a warning naming the key and the file
    image.write_bytes((tmp_path / "cd" / f"{other}.png").read_bytes())
    with pytest.warns(CacheIntegrityWarning, match=f"{key}.*{image.name}"):
        assert not cache.has(key)
    assert not image.exists() and cache.get(key) is None and cache.keys() == [other]
    # both files of another entry copied under this key: the metadata names another key
    for suffix in (".png", ".json"):
        (tmp_path / "ab" / f"{key}{suffix}").write_bytes((tmp_path / "cd" / f"{other}{suffix}").read_bytes())
    with pytest.warns(CacheIntegrityWarning, match="another key"):
        assert cache.get(key) is None
    # garbled metadata
    cache.put(key, stored, {})
    (tmp_path / "ab" / f"{key}.json").write_text("{garbled")
    with pytest.warns(CacheIntegrityWarning, match="JSON"):
        assert not cache.has(key)
    # an entry from before checksums is accepted as it is, and still dropped when it does not decode
    cache.put(key, stored, {"seconds": 2.0})
    legacy = {k: v for k, v in cache.metadata(key).items() if k not in ("png_sha256", "key")}
    (tmp_path / "ab" / f"{key}.json").write_text(json.dumps(legacy))
    fresh = StageCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fresh.has(key) and torch.equal(fresh.get(key), stored)
    image.write_bytes(b"broken")
    with pytest.warns(CacheIntegrityWarning):
        assert fresh.get(key) is None
    assert not fresh.has(key)


def test_a_verified_entry_is_hashed_once_until_its_files_change(tmp_path, monkeypatch):
    import pipelines.cache as cache_module

    cache = StageCache(tmp_path)
    cache.put("ab" * 32, torch.rand(1, 3, 4, 4), {})
    calls = []
    real = cache_module.sha256_hex
    monkeypatch.setattr(cache_module, "sha256_hex", lambda data: calls.append(1) or real(data))
    assert cache.has("ab" * 32) and cache.has("ab" * 32) and cache.has("ab" * 32)
    assert len(calls) == 1
    image = tmp_path / "ab" / f"{'ab' * 32}.png"
    _draw_in_place(image, _other_png(image))
    with pytest.warns(CacheIntegrityWarning):
        assert not cache.has("ab" * 32)


def test_legacy_metric_cache_files_are_recomputed_silently(tmp_path):
    from types import SimpleNamespace

    from pipelines import scoring

    scene = SimpleNamespace(gt=torch.rand(1, 3, 16, 16), gt_over=None, gt_under=None, scale=2)
    config = SimpleNamespace(convention="paper", also=(), metrics=["psnr"])
    output = torch.rand(1, 3, 16, 16)
    values = scoring.score_output(scene, "a" * 64, output, config, tmp_path)
    path = next((tmp_path / "metrics").rglob("*.json"))
    assert json.loads(path.read_text())["values"] == values
    path.write_text(json.dumps({name: 0.0 for name in values}))  # the format before checksums
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scoring.score_output(scene, "a" * 64, output, config, tmp_path) == values
    assert json.loads(path.read_text())["values"] == values


# ------------------------------------------------------------------------------------------------
# concurrent publishing


@pytest.mark.parametrize("link", [True, False])
def test_concurrent_publishing_leaves_no_temporary_files(tmp_path, link):
    cache = StageCache(tmp_path / "cache")
    keys = ["ab" * 32, "cd" * 32]
    for key in keys:
        cache.put(key, torch.rand(1, 3, 8, 8), {})
    publisher = Publisher(tmp_path / "out", cache.root, link=link)
    scene_images = [torch.rand(1, 3, 8, 8) for _ in range(2)]
    errors = []

    def publish(offset: int) -> None:
        try:
            for i in range(60):
                publisher.publish_final(keys[(i + offset) % 2], 2, "M", "s")
                publisher.publish_final(keys[0], 2, "N", "s")
                _publish_scene_image(publisher, scene_images[(i + offset) % 2])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    out = tmp_path / "out"
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []
    assert cache.temporaries() == []
    target = out / "images" / "x2" / "N" / "s.png"
    assert target.read_bytes() == (cache.root / "ab" / f"{keys[0]}.png").read_bytes()
    assert os.path.samefile(target, cache.root / "ab" / f"{keys[0]}.png") == link


def _publish_scene_image(publisher: Publisher, image: torch.Tensor) -> None:
    from types import SimpleNamespace

    scene = SimpleNamespace(name="s", over=image, under=None, gt=None, gt_over=None, gt_under=None)
    publisher.publish_scene(scene, 2)


def test_a_publisher_that_loses_the_race_leaves_no_temporary_file(tmp_path, monkeypatch):
    """The race made deterministic: another publisher linked the target to the entry between this
    one's check and its rename, so the rename of a hard link onto the same file does nothing."""
    cache = StageCache(tmp_path / "cache")
    cache.put("ab" * 32, torch.rand(1, 3, 8, 8), {})
    source = cache.root / "ab" / f"{'ab' * 32}.png"
    publisher = Publisher(tmp_path / "out", cache.root)
    target = publisher.output_path("images", "x2", "M", "s.png")
    target.parent.mkdir(parents=True)
    os.link(source, target)  # what the other publisher did
    monkeypatch.setattr(os.path, "samefile", lambda a, b: False)  # ...after this one's check
    publisher.publish("ab" * 32, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["s.png"]
    assert target.read_bytes() == source.read_bytes()
