"""Weights keys that name nothing are errors (issue 15, item 5), and what `doctor` and the paper
profile's early failure say about weights."""

from __future__ import annotations

import json
import textwrap

import pytest

from pipelines.cli import main


def _config(tmp_path, weights: str, scales: str = "[2]", extra: str = "") -> str:
    (tmp_path / "w.pth").write_bytes(b"")
    path = tmp_path / "bench.toml"
    path.write_text(textwrap.dedent(f"""
        [profiles.demo]
        scales = {scales}
        output_dir = "{tmp_path / 'out'}"
        cache_dir = "{tmp_path / 'cache'}"
        [profiles.demo.dataset]
        num_scenes = 1
        hr_size = 48
        [profiles.demo.weights]
        {weights}
        {extra}
    """))
    return str(path)


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("key, expected", [
    ('"RCANN.x2"', "no such method; did you mean RCAN.x2"),
    ('"RCAN.x3"', "scale x3 is not among the profile's scales [2]"),
    ('"MEF-Net.x2"', 'MEF-Net is scale-free: use the key "MEF-Net"'),
    ('"MGFF"', "MGFF loads no weights"),
])
@pytest.mark.parametrize("command", [["run-all"], ["run", "MGFF+RCAN"], ["list"]])
def test_unknown_weights_key_is_an_error_naming_key_and_file(tmp_path, capsys, key, expected, command):
    config = _config(tmp_path, f'{key} = "w.pth"')
    assert main(["--config", config, *command]) == 2
    line = _one_error(capsys)
    assert config in line and f"profiles.demo.weights.{key}" in line and expected in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "stages").exists()  # before any work


def test_valid_keys_pass(tmp_path, capsys):
    config = _config(tmp_path, '"RCAN.x4" = "w.pth"\n"MEF-Net" = "w.pth"', scales="[2, 4]")
    assert main(["--config", config, "list", "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)["methods"]
    assert "RCAN.x4: found" in methods["RCAN"]["weights"] and "MEF-Net: found" in methods["MEF-Net"]["weights"]


def test_paper_missing_files_listed_once_each(tmp_path, capsys):
    config = _config(tmp_path, "", scales="[2, 4]", extra='')
    text = open(config).read().replace('[profiles.demo]', '[profiles.demo]\nmodel_size = "official"')
    open(config, "w").write(text)
    assert main(["--config", config, "run-all"]) == 2
    err = capsys.readouterr().err
    assert err.count('weights."MEF-Net"') == 1 and err.count('weights."U2Fusion"') == 1
    assert err.count('weights."RCAN.x2"') == 1 and err.count('weights."RCAN.x4"') == 1


def test_doctor_tells_cached_demo_weights_from_untrained(tmp_path, capsys, monkeypatch):
    from pipelines.config import load_config
    from pipelines.registry import method
    from pipelines.weights import demo_weights_path

    config = _config(tmp_path, "")
    profile = load_config(config).profile()
    cached = demo_weights_path(profile, method("RCAN"), 2, profile.cache_dir)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    assert main(["--config", config, "doctor", "--json"]) == 0
    weights = json.loads(capsys.readouterr().out)["weights"]
    assert weights["RCAN.x2"]["status"] == "demo weights (cached)" and weights["RCAN.x2"]["path"] == str(cached)
    assert weights["SRFBN.x2"]["status"] == "demo weights (trained on first use)"


@pytest.mark.parametrize("table, key, expected", [
    ("[profiles.demo.runtime]\ntile_size = 1", "runtime.tile_size", "not larger than SRFBN's tile overlap"),
    ("[profiles.demo.dataset]\nseed = -1", "dataset.seed", "non-negative"),
])
def test_bad_runtime_and_dataset_values_name_their_key_before_work(tmp_path, capsys, table, key, expected):
    config = _config(tmp_path, "")
    text = open(config).read()
    section, line = table.split("\n")
    text = text.replace(section, f"{section}\n{line}") if section in text else text + f"\n{table}\n"
    open(config, "w").write(text)
    assert main(["--config", config, "run", "SRFBN+MGFF"]) == 2
    error = _one_error(capsys)
    assert f"profiles.demo.{key}" in error and expected in error and config in error
    assert not (tmp_path / "cache" / "demo_weights").exists()  # before any work


@pytest.mark.parametrize("scales, hr_size", [("[2]", 44), ("[3]", 64)])
def test_demo_size_not_fitting_the_scales_names_the_key(tmp_path, capsys, scales, hr_size):
    config = _config(tmp_path, "", scales=scales)
    text = open(config).read().replace("hr_size = 48", f"hr_size = {hr_size}")
    open(config, "w").write(text)
    assert main(["--config", config, "list"]) == 2
    error = _one_error(capsys)
    assert "profiles.demo.dataset.hr_size" in error and str(hr_size) in error


def test_score_prints_strict_json_for_identical_images(tmp_path, capsys):
    import cv2
    import numpy as np

    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    for name in ("o", "u", "f"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), image)
    assert main(["score", "--over", str(tmp_path / "o.png"), "--under", str(tmp_path / "u.png"),
                 "--fused", str(tmp_path / "f.png"), "--gt", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "Infinity" not in out and "NaN" not in out
    result = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert result["psnr"] is None and result["psnr_non_finite"] == "inf" and result["ssim"] == pytest.approx(1.0)


def test_weights_file_missing_with_a_backup_beside_it(tmp_path, capsys):
    config = _config(tmp_path, '"RCAN.x2" = "RCAN.pth"')
    (tmp_path / "RCAN.pth.bak").write_bytes(b"old")
    assert main(["--config", config, "list", "--json"]) == 0
    assert f"MISSING {tmp_path / 'RCAN.pth'}" in json.loads(capsys.readouterr().out)["methods"]["RCAN"]["weights"]
    assert main(["--config", config, "run", "SRFBN+MGFF", "RCAN+MGFF"]) == 2
    error = _one_error(capsys)
    assert "RCAN.pth" in error and ".index" not in error and ".bak" not in error


def test_garbled_results_database_is_named_with_a_hint(tmp_path, capsys):
    import sqlite3

    from pipelines.store import ResultsStore, StoreError

    database = tmp_path / "results.sqlite"
    database.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="move it aside") as info:
        ResultsStore(database)
    assert str(database) in str(info.value) and isinstance(info.value.__cause__, sqlite3.DatabaseError)
    config = _config(tmp_path, "")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.sqlite").write_bytes(b"garbage" * 1000)
    assert main(["--config", config, "run", "SRFBN+MGFF"]) == 2
    error = _one_error(capsys)
    assert str(tmp_path / "out" / "results.sqlite") in error and "move it aside" in error
    assert not (tmp_path / "cache" / "demo_weights").exists()  # before any weights were made


def test_read_only_output_folder_is_named_before_work(tmp_path, capsys):
    import shutil
    import subprocess

    out = tmp_path / "out"
    out.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(out)]).returncode != 0:
        pytest.skip("chattr +i is not available here to make a folder read-only for root")
    try:
        config = _config(tmp_path, "")
        assert main(["--config", config, "run", "SRFBN+MGFF"]) == 2
        error = _one_error(capsys)
        assert "profiles.demo.output_dir" in error and str(out) in error and "cannot write" in error
        assert not (tmp_path / "cache" / "demo_weights").exists()
    finally:
        subprocess.run(["chattr", "-i", str(out)])
