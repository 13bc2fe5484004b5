"""Bad inputs: each gives one `error:` line naming the file or key (no traceback without --debug),
or is accepted when it is only unusual; nothing computed before is lost.

Two groups. `CLI_CASES` go through `cfanet-bench score` / `apply` / any command's config loading,
one file each. `test_bad_inputs_in_run_all` runs `cfanet-bench run-all` (all 34 methods, seeded demo
weights) on a `triples` dataset folder: a good scene is computed first, then each bad case is
added to the folder and run-all is run again; after every failure the cache entries and the
finished run that existed before are checked to be untouched (same files, same results), and the
case is removed again. Every case prints its one-line message (`pytest -s` shows the list).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from grid_counts import paper_counts
from pipelines.cli import main
from pipelines.model_files import save_model_checkpoint

# ------------------------------------------------------------------------------------------------
# helpers


def _image(path: Path, h: int = 48, w: int = 48, level: float = 0.5, seed: int = 0, bits: int = 8,
           channels: int = 3) -> Path:
    """A random textured image written by OpenCV (as a camera file would be)."""
    rng = np.random.default_rng(seed)
    peak = 255 if bits == 8 else 65535
    base = rng.integers(0, peak // 4, (h, w, 3)) + int(level * peak * 0.7)
    array = np.clip(base, 0, peak).astype(np.uint8 if bits == 8 else np.uint16)
    if channels == 1:
        array = array[:, :, 0]
    elif channels == 4:
        array = np.dstack([array, np.full((h, w), peak, array.dtype)])
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _nan_tiff(path: Path, h: int = 48, w: int = 48) -> Path:
    array = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    array[5, 7, 1] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _small_checkpoint(method: str, path: Path, size: str = "small") -> Path:
    from pipelines.registry import method as entry_of

    entry = entry_of(method)
    model = entry.create(2, size, seed=0)
    return save_model_checkpoint(model.network, path, {"method": method, "size": size, "scale": 2})


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cfanet_bench": "{}", "payload": _Evil(marker)}, path)
    return path


def _one_line(capsys, code: int, *needles: str) -> str:
    """The command failed with status 2 and printed exactly one `error:` line (plus, at most,
    `warning:` lines), containing every needle, and no traceback."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2, captured.err
    assert len(errors) == 1, captured.err
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _accepted(capsys, code: int, output: Path | None = None) -> list[str]:
    captured = capsys.readouterr()
    assert code == 0, captured.err
    if output is not None:
        assert output.is_file()
    return [line for line in captured.err.splitlines() if line.strip()]


def _report(capsys, case: str, line: str) -> None:
    """Show the case and its message (`pytest -s`), past the capture the test itself reads."""
    with capsys.disabled():
        print(f"\nbad input [{case}]: {line}")


# ------------------------------------------------------------------------------------------------
# score / apply / config: one file each

def _pair(tmp_path: Path) -> tuple[Path, Path]:
    return _image(tmp_path / "over.png", level=0.9, seed=1), _image(tmp_path / "under.png", level=0.1, seed=2)


def _apply_mgff(tmp_path: Path, over: Path, under: Path, output: str = "fused.png") -> list[str]:
    return ["apply", "MGFF", "--over", str(over), "--under", str(under), "-o", str(tmp_path / output)]


def case_missing_file(tmp_path):
    over, under = _pair(tmp_path)
    return ["score", "--over", str(over), "--under", str(under), "--fused", str(tmp_path / "missing.png")], \
        ("missing.png", "no such file")


def case_zero_byte_file(tmp_path):
    over, _ = _pair(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return _apply_mgff(tmp_path, over, empty), ("empty.png", "file is empty")


def case_truncated_png(tmp_path):
    over, under = _pair(tmp_path)
    return _apply_mgff(tmp_path, over, _truncate(under)), ("under.png", "truncated PNG")


def case_truncated_jpeg(tmp_path):
    over, _ = _pair(tmp_path)
    jpeg = _truncate(_image(tmp_path / "under.jpg", level=0.1))
    return _apply_mgff(tmp_path, over, jpeg), ("under.jpg", "truncated JPEG")


def case_not_an_image_with_an_image_extension(tmp_path):
    over, _ = _pair(tmp_path)
    notes = tmp_path / "notes.png"
    notes.write_text("these are my notes, not a picture\n")
    return _apply_mgff(tmp_path, over, notes), ("notes.png", "not a decodable image")


def case_output_with_an_unsupported_extension(tmp_path):
    over, under = _pair(tmp_path)
    return _apply_mgff(tmp_path, over, under, output="fused.gif"), ("fused.gif", "unsupported image suffix")


def case_directory_given_as_an_image(tmp_path):
    over, _ = _pair(tmp_path)
    (tmp_path / "folder.png").mkdir()
    return _apply_mgff(tmp_path, over, tmp_path / "folder.png"), ("folder.png", "not a regular file")


def case_exposures_of_different_sizes(tmp_path):
    over = _image(tmp_path / "over.png", 48, 48)
    under = _image(tmp_path / "under.png", 40, 48)
    return _apply_mgff(tmp_path, over, under), ("over.png 48x48", "under.png 40x48", "differ in size")


def case_nan_in_a_float_tiff(tmp_path):
    over, _ = _pair(tmp_path)
    return _apply_mgff(tmp_path, over, _nan_tiff(tmp_path / "under.tif")), ("under.tif", "NaN")


def case_image_smaller_than_the_model_window(tmp_path):
    tiny = _image(tmp_path / "tiny.png", 2, 2)
    weights = _small_checkpoint("SwinIR", tmp_path / "swinir.pt", size="official")
    return ["apply", "SwinIR", "--input", str(tiny), "--weights", str(weights), "--scale", "2", "-o",
            str(tmp_path / "up.png")], ("tiny.png", "at least 3x3")


def case_weights_file_of_another_model(tmp_path):
    lr = _image(tmp_path / "lr.png", 16, 16)
    srfbn = _small_checkpoint("SRFBN", tmp_path / "srfbn_x2.pt")
    return ["apply", "RCAN", "--input", str(lr), "--weights", str(srfbn), "--scale", "2", "-o",
            str(tmp_path / "up.png")], ("srfbn_x2.pt", "do not match the model", "missing key(s)",
                                        "unexpected key(s)")


def case_hostile_checkpoint(tmp_path):
    lr = _image(tmp_path / "lr.png", 16, 16)
    evil = _evil_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned")
    return ["apply", "SRFBN", "--input", str(lr), "--weights", str(evil), "--scale", "2", "-o",
            str(tmp_path / "up.png")], ("evil.pt", "refused to unpickle")


def case_config_unknown_key(tmp_path):
    config = tmp_path / "benchmark.toml"
    config.write_text("[profiles.demo.runtime]\ntile_sise = 64\n")
    return ["--config", str(config), "list"], (str(config), "profiles.demo.runtime.tile_sise", "unknown key")


def case_config_wrong_type(tmp_path):
    config = tmp_path / "benchmark.toml"
    config.write_text("[profiles.demo]\nscales = 2\n[profiles.demo.runtime]\namp = \"yes\"\n")
    return ["--config", str(config), "doctor"], (str(config), "profiles.demo.scales", "expected a list")


def case_config_not_toml(tmp_path):
    config = tmp_path / "benchmark.toml"
    config.write_text("[profiles.demo\nscales = [2]\n")
    return ["--config", str(config), "run-all"], (str(config), "not valid TOML")


CLI_CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_bad_input_gives_one_line_naming_the_file_or_key(tmp_path, capsys, case):
    argv, needles = CLI_CASES[case](tmp_path)
    line = _one_line(capsys, main(argv), *needles)
    _report(capsys, case.replace("_", " "), line)
    assert not (tmp_path / "pwned").exists()  # the hostile pickle's payload never ran
    assert not (tmp_path / "fused.png").exists() and not (tmp_path / "up.png").exists()


@pytest.mark.parametrize("kind", ["grayscale", "16-bit", "alpha", "jpeg named .png"])
def test_unusual_but_valid_inputs_are_accepted(tmp_path, capsys, kind):
    over = _image(tmp_path / "over.png", level=0.9, seed=1)
    under = tmp_path / "under.png"
    if kind == "jpeg named .png":
        _image(tmp_path / "under.jpg", level=0.1).rename(under)
        assert under.read_bytes()[:2] == b"\xff\xd8"  # JPEG content, PNG name
    else:
        bits, channels = {"grayscale": (8, 1), "16-bit": (16, 3), "alpha": (8, 4)}[kind]
        _image(under, level=0.1, bits=bits, channels=channels)
    output = tmp_path / "fused.png"
    err = _accepted(capsys, main(_apply_mgff(tmp_path, over, under)), output)
    fused = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
    assert fused.shape == (48, 48, 3) and fused.dtype == np.uint8
    if kind == "alpha":
        assert err == [f"warning: {under}: alpha channel dropped", f"wrote {output}"]
    else:
        assert err == [f"wrote {output}"]
    _report(capsys, f"{kind} (accepted)", err[0])


def test_no_traceback_in_a_real_process_unless_debug(tmp_path):
    command = [sys.executable, "-m", "pipelines.cli", "score", "--over", str(tmp_path / "o.png"), "--under",
               str(tmp_path / "u.png"), "--fused", str(tmp_path / "f.png")]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and plain.stderr == f"error: {tmp_path / 'o.png'}: no such file\n"
    for debug in (command[:3] + ["--debug"] + command[3:], command + ["--debug"]):
        loud = subprocess.run(debug, capture_output=True, text=True, timeout=120)
        assert loud.returncode == 1 and "Traceback" in loud.stderr and "ImageFileError" in loud.stderr


def test_an_internal_error_is_one_line_too(monkeypatch, capsys):
    import pipelines.cli as cli

    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli, "cmd_doctor", broken)
    assert main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert err == "error: internal error (TypeError): unsupported operand (run with --debug for the traceback)\n"


# ------------------------------------------------------------------------------------------------
# run-all on a dataset folder holding the bad case

@pytest.fixture
def seeded(monkeypatch):
    import pipelines.demo_training
    from test_runner import seeded_weights

    monkeypatch.setattr(pipelines.demo_training, "train_demo_weights", seeded_weights)


def _bench(tmp_path: Path, weights: dict[str, Path] | None = None) -> Path:
    config = tmp_path / "benchmark.toml"
    lines = ['default_profile = "bench"', "[profiles.bench]", 'output_dir = "out"', 'cache_dir = "cache"',
             "[profiles.bench.dataset]", 'kind = "triples"', 'root = "data"']
    if weights:
        lines.append("[profiles.bench.weights]")
        lines += [f'"{key}" = "{path}"' for key, path in weights.items()]
    config.write_text("\n".join(lines) + "\n")
    return config


def _scene(data: Path, name: str, h: int = 48, w: int = 48, suffix: str = ".png", **kinds) -> dict[str, Path]:
    """over/, under/, gt/ images of one scene; `kinds` maps a role to (bits, channels)."""
    files, base = {}, sum(map(ord, name)) * 10  # different pixels for every scene
    for role, level, seed in (("over", 0.9, 1), ("under", 0.1, 2), ("gt", 0.5, 3)):
        bits, channels = kinds.get(role, (8, 3))
        files[role] = _image(data / role / f"{name}{suffix}", h, w, level, base + seed, bits, channels)
    return files


def _state(tmp_path: Path) -> tuple[dict, dict]:
    """Inode and mtime of every complete cache entry, and the finished runs' results."""
    from pipelines.cache import StageCache

    cache = StageCache(tmp_path / "cache" / "stages")
    entries = {}
    for key in cache.keys():
        for suffix in (".png", ".json"):
            stat = (cache.root / key[:2] / f"{key}{suffix}").stat()
            entries[key + suffix] = (stat.st_ino, stat.st_mtime_ns)
    connection = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    finished = {run: sorted(connection.execute("SELECT scene, method, metric, convention, value FROM results "
                                               "WHERE run_id = ?", (run,)).fetchall())
                for (run,) in connection.execute("SELECT run_id FROM runs WHERE status = 'finished'")}
    connection.close()
    return entries, finished


def _kept(tmp_path: Path, before: tuple[dict, dict]) -> None:
    """Everything computed before is still there, untouched."""
    entries, finished = _state(tmp_path)
    assert all(entries.get(name) == ident for name, ident in before[0].items())
    assert finished == before[1]


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_inputs_in_run_all(tmp_path, capsys, monkeypatch, seeded):
    data = tmp_path / "data"
    config = _bench(tmp_path)
    run_all = ["--config", str(config), "run-all"]
    _scene(data, "a")
    assert main(run_all) == 0
    per_scene = paper_counts().stages_per_scene
    assert f"{per_scene} of {per_scene} stages computed" in capsys.readouterr().out
    before = _state(tmp_path)
    assert len(before[0]) == 2 * per_scene and len(before[1]) == 1
    tried = 0

    def bad(case: str, *needles: str, argv=None) -> str:
        nonlocal tried
        line = _one_line(capsys, main(argv or run_all), *needles)
        _kept(tmp_path, before)
        _report(capsys, f"run-all: {case}", line)
        tried += 1
        return line

    # truncated PNG ground truth
    files = _scene(data, "b")
    _truncate(files["gt"])
    bad("truncated PNG in the dataset", str(files["gt"]), "truncated PNG")
    _remove(*files.values())

    # exposures of different sizes
    files = _scene(data, "b")
    _image(files["under"], 40, 48, 0.1)
    bad("exposures of different sizes", str(files["over"]), str(files["under"]), "differ in size")
    _remove(*files.values())

    # NaN in a float TIFF exposure
    files = _scene(data, "b")
    _remove(files["over"])
    nan = _nan_tiff(data / "over" / "b.tif")
    bad("NaN in a float TIFF", str(nan), "NaN")
    _remove(nan, files["under"], files["gt"])

    # zero-byte exposure
    files = _scene(data, "b")
    files["under"].write_bytes(b"")
    bad("zero-byte file in the dataset", str(files["under"]), "file is empty")
    _remove(*files.values())

    # missing file: one folder lacks the scene
    files = _scene(data, "b")
    _remove(files["gt"])
    bad("missing file (gt/ lacks a scene)", str(data), "gt/ lacks b")
    _remove(*files.values())

    # duplicate scene names: a.png and a.jpg in one folder
    duplicate = _image(data / "over" / "a.jpg", level=0.9)
    bad("duplicate scene names", str(data / "over"), "a.jpg", "a.png")
    _remove(duplicate)

    # scene name with path characters
    files = _scene(data, "x\\..\\..\\evil")
    bad("scene name with path characters", str(data), "x\\\\..\\\\..\\\\evil", "cannot be used in output file names")
    _remove(*files.values())
    assert not list(tmp_path.glob("**/evil*.png"))

    # unreadable directory (simulated when running as root, who can read anything)
    folder = data / "under"
    folder.chmod(0)
    try:
        with pytest.MonkeyPatch.context() as patch:
            if os.access(folder, os.R_OK):
                real_iterdir = Path.iterdir

                def iterdir(self):
                    if self == folder:
                        raise PermissionError(13, "Permission denied", str(self))
                    return real_iterdir(self)

                patch.setattr(Path, "iterdir", iterdir)
            bad("unreadable directory", str(folder), "permission denied")
    finally:
        folder.chmod(0o755)

    # weights file of another model, and a hostile pickle, configured as a method's weights
    rcan = _small_checkpoint("RCAN", tmp_path / "rcan_small.pt")
    wrong = ["--config", str(_bench(tmp_path, {"SRFBN.x2": rcan})), "run-all"]
    bad("weights file of another model (config)", str(rcan), "do not match the model", argv=wrong)
    evil = _evil_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned")
    hostile = ["--config", str(_bench(tmp_path, {"SRFBN.x2": evil})), "run-all"]
    bad("hostile checkpoint (config)", str(evil), "refused to unpickle", argv=hostile)
    assert not (tmp_path / "pwned").exists()
    _bench(tmp_path)

    # config with an unknown key and one with a wrong type
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(config.read_text() + "workers = 4\n")
    bad("config unknown key", str(unknown), "profiles.bench.dataset.workers", "unknown key",
        argv=["--config", str(unknown), "run-all"])
    typed = tmp_path / "typed.toml"
    typed.write_text(config.read_text().replace('kind = "triples"', 'kind = "triples"\nhr_size = "big"'))
    bad("config wrong type", str(typed), "profiles.bench.dataset.hr_size", "expected an integer",
        argv=["--config", str(typed), "run-all"])

    # a scene too small for a metric (and a model's window): found before any work, naming its files
    files = _scene(data, "b", 4, 4)
    line = _one_line(capsys, main(run_all), "scene 'b'", str(files["over"]), "4x4 HR images are too small")
    _report(capsys, "run-all: scene too small for the metrics", line)
    tried += 1
    entries, finished = _state(tmp_path)
    assert entries == before[0] and finished == before[1]  # nothing computed, nothing lost
    # fixed: the rerun resumes (a's stages from the cache) and finishes
    _remove(*files.values())
    _scene(data, "b")
    assert main(run_all) == 0
    assert f"{per_scene} of {2 * per_scene} stages computed ({per_scene} from the cache)" in capsys.readouterr().out

    # a size not divisible by the scale: cropped (modcrop), said, and recorded
    _scene(data, "c", 49, 47)
    code = main(run_all)
    out = capsys.readouterr().out
    assert code == 0 and f"{per_scene} of {3 * per_scene} stages computed" in out
    assert "note: scene 'c': HR 49x47 cropped to 48x46" in out
    import json

    manifest = json.loads(sqlite3.connect(tmp_path / "out" / "results.sqlite").execute(
        "SELECT manifest FROM runs WHERE status = 'finished' ORDER BY finished DESC LIMIT 1").fetchone()[0])
    assert manifest["modcropped"] == {"x2/c": [[49, 47], [48, 46]]}
    _report(capsys, "run-all: size not divisible by the scale (accepted)", "note: scene 'c': HR 49x47 cropped to 48x46")

    # grayscale, 16-bit and alpha inputs in the dataset are accepted (alpha with a warning line)
    _scene(data, "d", over=(16, 3), under=(8, 1), gt=(8, 4))
    code = main(run_all)
    captured = capsys.readouterr()
    assert code == 0 and f"{per_scene} of {4 * per_scene} stages computed" in captured.out
    assert [line for line in captured.err.splitlines() if line.strip()] == \
        [f"warning: {data / 'gt' / 'd.png'}: alpha channel dropped"]
    _report(capsys, "run-all: 16-bit, grayscale and alpha inputs (accepted)", captured.err.strip())

    # HTML characters in a scene name are allowed, and its images stay inside the output folder
    _scene(data, "<img src=x onerror=alert(1)>")
    assert main(run_all) == 0
    capsys.readouterr()
    published = tmp_path / "out" / "images" / "x2" / "CFANet" / "<img src=x onerror=alert(1)>.png"
    assert published.is_file()
    assert all(p.resolve().is_relative_to((tmp_path / "out").resolve())
               for p in (tmp_path / "out").rglob("*") if p.is_file())
    with capsys.disabled():
        print(f"\nrun-all bad inputs tried: {tried}, each a single error line; nothing computed before was lost")


@pytest.mark.parametrize("size", [4, 12])
def test_scene_too_small_for_the_metrics_fails_before_work(tmp_path, capsys, monkeypatch, seeded, size):
    """A 4x4 (or 12x12) scene used to fail in SSIM after every stage had run: now the check before
    work names the scene's files and the metric that needs more pixels."""
    monkeypatch.chdir(tmp_path)
    config = _bench(tmp_path)
    files = _scene(tmp_path / "data", "tiny", size, size)
    assert main(["--config", str(config), "run", "SRFBN+MGFF", "CF-Net"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "scene 'tiny'" in err[0], err
    assert str(files["over"]) in err[0] and f"{size}x{size} HR images are too small" in err[0]
    assert ("PSNR (sr) cannot score it" if size == 4 else "SSIM (sr) cannot score it") in err[0]
    assert not (tmp_path / "cache" / "demo_weights").exists() and not list((tmp_path / "cache").glob("stages/??/*"))
