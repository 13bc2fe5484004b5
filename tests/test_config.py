"""benchmark.toml parsing: the shipped file, defaults, and errors that name the key and the file."""

from pathlib import Path

import pytest

from pipelines.config import ConfigError, Profile, default_config, find_config, load_config

REPO = Path(__file__).resolve().parents[1]


def test_shipped_config_has_demo_and_paper():
    config = load_config(REPO / "benchmark.toml")
    assert config.default_profile == "demo"
    demo, paper = config.profile("demo"), config.profile("paper")
    assert isinstance(demo, Profile) and demo.dataset.kind == "demo" and demo.model_size == "small"
    assert paper.dataset.kind == "sice" and paper.scales == (2,) and paper.model_size == "official"
    assert paper.dataset.root == REPO / "data" / "SICE"  # relative to the file's folder
    assert paper.weights["RCAN.x2"] == REPO / "weights" / "RCAN_BIX2.pt"
    # the paper is x2 only: x4 is a profile of its own, and neither asks for the other's weights
    x4 = config.profile("paper-x4")
    assert x4.scales == (4,) and x4.weights["RCAN.x4"] == REPO / "weights" / "RCAN_BIX4.pt"
    assert not any(key.endswith(".x4") for key in paper.weights)
    assert not any(key.endswith(".x2") for key in x4.weights)
    # the shipped test split and CF-Net's HR size are the documented defaults
    from cfanet.data.splits import shipped_split

    for profile in (paper, x4):
        assert profile.dataset.split == "sice-default"
        assert profile.dataset.split_file == shipped_split("sice-default")
        assert profile.dataset.hr_long_side == 1500
    assert demo.metrics.convention == "paper" and demo.metrics.also == ("sr",)


def test_built_in_default_and_lookup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CFANET_BENCH_CONFIG", raising=False)
    assert find_config().source == "<built-in defaults>"
    assert default_config().profile().dataset.kind == "demo"
    (tmp_path / "benchmark.toml").write_text('[profiles.demo]\nscales = [4]\n')
    assert find_config().profile().scales == (4,)


def _write(tmp_path, text):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, key, problem", [
    ('[profiles.demo]\nscale = [2]\n', "profiles.demo.scale", "unknown key"),
    ('[profiles.demo.dataset]\nkind = "demo"\nnum_scene = 3\n', "profiles.demo.dataset.num_scene", "unknown key"),
    ('[profiles.demo.dataset]\nkind = "flickr"\n', "profiles.demo.dataset.kind", "'demo' or 'sice'"),
    ('[profiles.demo.dataset]\nnum_scenes = "six"\n', "profiles.demo.dataset.num_scenes", "integer"),
    ('[profiles.demo.dataset]\nnum_scenes = 0\n', "profiles.demo.dataset.num_scenes", "positive"),
    ('[profiles.demo]\nscales = [5]\n', "profiles.demo.scales", "not supported"),
    ('[profiles.demo.runtime]\namp = "yes"\n', "profiles.demo.runtime.amp", "true or false"),
    ('[profiles.demo.metrics]\nconvention = "Y"\n', "profiles.demo.metrics.convention", "'paper' or 'sr'"),
    ('[profiles.p.dataset]\nkind = "sice"\n', "profiles.p.dataset.root", "required"),
    ('default_profile = "paper"\n[profiles.demo]\n', "default_profile", "not a defined profile"),
    ('colour = 1\n', "colour", "unknown key"),
    ('[profiles.demo\n', "", "not valid TOML"),
])
def test_errors_name_key_and_file(tmp_path, text, key, problem):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and problem in message
    assert info.value.key == key


def test_missing_file_and_unknown_profile(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    config = load_config(_write(tmp_path, "[profiles.demo]\n"))
    with pytest.raises(ConfigError, match="no profile 'paper'"):
        config.profile("paper")
