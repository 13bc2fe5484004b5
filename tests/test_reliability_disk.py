"""A full disk (issue 15): the error is one line naming the file that could not be written, and a
rerun with space again computes nothing that was finished before. Needs a small tmpfs (root and
`mount`); skipped where one cannot be mounted."""

from __future__ import annotations

import subprocess

import pytest

import pipelines.demo_training
from pipelines.cli import main
from test_runner import seeded_weights


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_output_disk_names_the_file_and_keeps_the_work(tmp_path, small_disk, capsys, monkeypatch):
    monkeypatch.setattr(pipelines.demo_training, "train_demo_weights", seeded_weights)
    config = tmp_path / "b.toml"
    body = (f'[profiles.demo]\noutput_dir = "{{out}}"\ncache_dir = "{tmp_path / "cache"}"\n'
            f'[profiles.demo.dataset]\nnum_scenes = 2\nhr_size = 96\n')
    config.write_text(body.format(out=small_disk / "out"))
    names = ["Fast-SPD-MEF+SRFBN", "MGFF+SRFBN", "SRFBN+MGFF"]
    assert main(["--config", str(config), "run", *names]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(small_disk / "out") in err[0] and "full" in err[0].lower(), err
    computed = sorted((tmp_path / "cache" / "stages").glob("??/*.png"))
    # with space again (another output folder), the finished stages come from the cache
    config.write_text(body.format(out=tmp_path / "out"))
    assert main(["--config", str(config), "run", *names]) == 0
    out = capsys.readouterr().out
    assert f"({len(computed)} from the cache)" in out
