"""Datasets: SICE, CF-Net layout, plain triples and the generated demo set."""

import cv2
import numpy as np
import pytest
import torch

from cfanet.data import DatasetError, open_dataset
from cfanet.data.demo import CameraModel, DemoDataset, srgb_decode, srgb_encode
from cfanet.images import read_image
from cfanet.resize import make_lr


def _img(path, h, w, level, seed=0, bits=8):
    rng = np.random.default_rng(seed)
    peak = 255 if bits == 8 else 65535
    base = rng.integers(0, peak // 8, (h, w, 3)) + int(level * peak)
    arr = np.clip(base, 0, peak).astype(np.uint8 if bits == 8 else np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), arr)
    return arr


@pytest.fixture
def sice_root(tmp_path):
    root = tmp_path / "SICE"
    for scene in ("1", "2", "10"):
        # file order deliberately not brightness order: 3 is darkest, 1 brightest
        for name, level in (("1.JPG", 0.8), ("2.PNG", 0.5), ("3.png", 0.05), ("4.png", 0.3)):
            _img(root / scene / name, 22, 30, level, seed=int(scene))
        _img(root / "label" / f"{scene}.jpg", 22, 30, 0.4)
    return root


def test_sice_picks_extremes_by_brightness(sice_root, caplog):
    data = open_dataset("sice", 2, root=sice_root)
    assert data.names() == ["1", "2", "10"]  # natural order, label folder found without case
    with caplog.at_level("INFO"):
        scene = data[0]
    assert scene.info["files"]["over"].endswith("1.JPG") and scene.info["files"]["under"].endswith("3.png")
    assert "over=1.JPG" in caplog.text
    report = data.selection_report()
    assert report[0]["over"] == "1.JPG" and report[0]["under"] == "3.png" and len(report[0]["brightness"]) == 4
    # modcrop to a multiple of 2 and LR made by MATLAB bicubic from the HR exposure
    assert scene.gt_over.shape == (1, 3, 22, 30) and scene.over.shape == (1, 3, 11, 15)
    assert torch.equal(scene.over, make_lr(read_image(sice_root / "1" / "1.JPG"), 2))
    assert scene.gt.shape == scene.gt_over.shape


def test_sice_x4_modcrops(sice_root):
    scene = open_dataset("sice", 4, root=sice_root)[0]
    assert scene.gt.shape[-2:] == (20, 28) and scene.over.shape[-2:] == (5, 7)
    assert scene.info["modcropped_from"] == (22, 30)


def test_sice_missing_label_and_size_mismatch(sice_root):
    (sice_root / "label" / "2.jpg").unlink()
    with pytest.raises(DatasetError, match="no ground truth for 1 of 3 scenes.*2"):
        open_dataset("sice", 2, root=sice_root).names()
    _img(sice_root / "label" / "2.jpg", 20, 30, 0.4)
    _img(sice_root / "2" / "4.png", 24, 30, 0.3)
    with pytest.raises(DatasetError, match=r"differ in size.*4\.png 24x30"):
        open_dataset("sice", 2, root=sice_root)["2"]


def test_sice_resize_long_side(sice_root):
    scene = open_dataset("sice", 2, root=sice_root, hr_long_side=64)[0]
    assert scene.gt_over.shape[-2:] == (46, 64) and scene.over.shape[-2:] == (23, 32)


def test_sice_split_file(sice_root, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("# test scenes\n10\n2\n")
    assert open_dataset("sice", 2, root=sice_root, split_file=split).names() == ["10", "2"]
    split.write_text("7\n")
    with pytest.raises(DatasetError, match="not in the dataset: 7"):
        open_dataset("sice", 2, root=sice_root, split_file=split).names()


@pytest.fixture
def sice_parts_root(tmp_path):
    """SICE as distributed: Part1 and Part2, both numbered from 1, each with its own Label folder."""
    root = tmp_path / "SICE"
    for part, scenes, label in (("Part1", ("1", "2"), "Label"), ("Part2", ("1",), "label")):
        for scene in scenes:
            seed = 10 * int(part[-1]) + int(scene)
            for name, level in (("a.png", 0.8), ("b.png", 0.05)):
                _img(root / part / scene / name, 22, 30, level, seed=seed)
            _img(root / part / label / f"{scene}.png", 22, 30, 0.4, seed=seed)
    return root


def test_sice_parts_keep_scene_names_unique(sice_parts_root):
    data = open_dataset("sice", 2, root=sice_parts_root)
    assert data.names() == ["Part1/1", "Part1/2", "Part2/1"]
    one, other = data["Part1/1"], data["Part2/1"]
    assert one.info["files"]["gt"].endswith("Part1/Label/1.png")
    assert other.info["files"]["gt"].endswith("Part2/label/1.png")  # each part's own labels, any case
    assert not torch.equal(one.gt, other.gt)
    assert open_dataset("sice", 2, root=sice_parts_root, parts=["Part2"]).names() == ["Part2/1"]
    with pytest.raises(DatasetError, match="no part folder 'Part3'"):
        open_dataset("sice", 2, root=sice_parts_root, parts=["Part3"])
    with pytest.raises(DatasetError, match="label_dir is for one part"):
        open_dataset("sice", 2, root=sice_parts_root, parts=["Part1"], label_dir=sice_parts_root / "Part1" / "Label")
    (sice_parts_root / "Part2" / "label" / "1.png").unlink()
    with pytest.raises(DatasetError, match=r"Part2/label: no ground truth for 1 of 1 scenes"):
        open_dataset("sice", 2, root=sice_parts_root).names()


def test_sice_parts_split_and_outputs_in_part_folders(sice_parts_root, tmp_path):
    from pipelines.publishing import Publisher

    split = tmp_path / "test.txt"
    split.write_text("Part2/1\n")
    data = open_dataset("sice", 2, root=sice_parts_root, split_file=split)
    assert data.names() == ["Part2/1"]
    publisher = Publisher(tmp_path / "out", tmp_path / "cache")
    publisher.publish_scene(data["Part2/1"], 2)
    assert (tmp_path / "out" / "images" / "x2" / "_scene" / "gt" / "Part2" / "1.png").is_file()
    with pytest.raises(DatasetError, match="not usable"):
        publisher.output_path("images", "x2", "M", "Part2/../../x.png")


def test_shipped_sice_split_is_the_documented_seeded_choice():
    from cfanet.data.splits import (SICE_PART_SIZES, SICE_TEST_PER_PART, shipped_split, sice_default_split,
                                    split_header)

    path = shipped_split("sice-default")
    listed = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert listed == sice_default_split(seed=0)
    assert len(listed) == len(set(listed)) == sum(SICE_TEST_PER_PART.values())
    for part, size in SICE_PART_SIZES.items():
        numbers = [int(n.split("/")[1]) for n in listed if n.startswith(part + "/")]
        assert len(numbers) == SICE_TEST_PER_PART[part] and 1 <= min(numbers) and max(numbers) <= size
    assert "seed=0" in split_header(path) and sice_default_split(seed=1) != listed


def test_sice_split_config_keys(tmp_path):
    from cfanet.data.splits import shipped_split
    from pipelines.config import ConfigError, load_config

    def config(body):
        path = tmp_path / "b.toml"
        path.write_text('[profiles.demo]\n[profiles.p]\nscales = [2]\n[profiles.p.dataset]\nkind = "sice"\n'
                        'root = "SICE"\n' + body)
        return load_config(path)

    assert config('split = "sice-default"\n').profile("p").dataset.split_file == shipped_split("sice-default")
    assert config('parts = ["Part1"]\n').profile("p").dataset.parts == ("Part1",)
    for body, key in (('split = "nope"\n', "dataset.split"), ('split = "sice-default"\nsplit_file = "t.txt"\n',
                      "dataset.split"), ('parts = []\n', "dataset.parts")):
        with pytest.raises(ConfigError, match=key):
            config(body)


def test_cfnet_layout_pairs_by_name(tmp_path):
    for folder in ("hr", "hr_over", "hr_under"):
        for name in ("a", "b"):
            _img(tmp_path / folder / f"{name}.png", 16, 24, 0.5)
    data = open_dataset("cfnet", 2, root=tmp_path)
    assert data.names() == ["a", "b"] and data["b"].over.shape[-2:] == (8, 12)
    _img(tmp_path / "hr_under" / "c.png", 16, 24, 0.5)
    with pytest.raises(DatasetError, match="hr_over/ lacks c"):
        open_dataset("cfnet", 2, root=tmp_path).names()


def test_cfnet_layout_shipped_lr_only(tmp_path):
    _img(tmp_path / "lr_over" / "t.png", 8, 6, 0.7)
    _img(tmp_path / "lr_under" / "t.png", 8, 6, 0.1)
    scene = open_dataset("cfnet", 4, root=tmp_path)["t"]
    assert scene.over.shape[-2:] == (8, 6) and scene.gt is None and scene.gt_over is None
    _img(tmp_path / "hr" / "t.png", 30, 24, 0.4)
    with pytest.raises(DatasetError, match="is not x4"):
        open_dataset("cfnet", 4, root=tmp_path)["t"]


def test_cfnet_sample_regenerates_lr(shared_data):
    data = open_dataset("cfnet", 4, root=shared_data / "cfnet-sample" / "train_data")
    scene = data["lake"]
    assert scene.gt.shape[-2:] == (844, 1500) and scene.over.shape[-2:] == (211, 375)
    assert "regenerated" in scene.info["lr"]


def test_triples_both_layouts(tmp_path):
    for key, level in (("over", 0.8), ("under", 0.1), ("gt", 0.4)):
        _img(tmp_path / "folders" / key / "s1.png", 12, 12, level)
        _img(tmp_path / "scenes" / "s1" / f"{key}.png", 12, 12, level)
    a = open_dataset("triples", 2, root=tmp_path / "folders")["s1"]
    b = open_dataset("triples", 2, root=tmp_path / "scenes")["s1"]
    assert torch.equal(a.over, b.over) and torch.equal(a.gt, b.gt) and a.over.shape[-2:] == (6, 6)
    (tmp_path / "scenes" / "s1" / "under.png").unlink()
    with pytest.raises(DatasetError, match="has over but not under"):
        open_dataset("triples", 2, root=tmp_path / "scenes").names()


def test_triples_16bit_and_grayscale_inputs(tmp_path):
    _img(tmp_path / "over" / "s.png", 12, 16, 0.8, bits=16)
    _img(tmp_path / "under" / "s.tif", 12, 16, 0.1, bits=16)
    cv2.imwrite(str(tmp_path / "gt.png"), np.full((12, 16), 100, np.uint8))
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt.png").rename(tmp_path / "gt" / "s.png")
    scene = open_dataset("triples", 4, root=tmp_path)["s"]
    assert scene.over.shape == (1, 3, 3, 4) and torch.all(scene.gt == 100 / 255)


def test_sice400_real_triples(shared_data):
    data = open_dataset("triples", 2, root=shared_data / "sice400")
    scene = data["textmef-001"]
    assert len(data) == 3 and scene.gt.shape[-2:] == (400, 600) and scene.over.shape[-2:] == (200, 300)
    assert scene.gt_over.mean() > scene.gt.mean() > scene.gt_under.mean()


def test_demo_is_deterministic_and_documented():
    a, b = DemoDataset(2, num_scenes=3, hr_size=96, seed=5), DemoDataset(2, num_scenes=3, hr_size=96, seed=5)
    for sa, sb in zip(a, b):
        assert sa.name == sb.name and torch.equal(sa.over, sb.over) and torch.equal(sa.gt_under, sb.gt_under)
    other = DemoDataset(2, num_scenes=3, hr_size=96, seed=6)[0]
    assert not torch.equal(a[0].gt_over, other.gt_over)
    scene = a[0]
    assert scene.over.shape == (1, 3, 48, 48) and scene.gt.shape == (1, 3, 96, 96)
    # 8-bit quantised exposures, brighter and darker than the ground truth
    assert torch.equal(scene.gt_over, torch.round(scene.gt_over * 255) / 255)
    assert scene.gt_over.mean() > scene.gt.mean() > scene.gt_under.mean()
    assert 2.0 <= scene.info["stops_over"] <= 3.0 and -3.0 <= scene.info["stops_under"] <= -2.0


def test_demo_splits_use_disjoint_photos():
    test = {s.info["photo"] for s in DemoDataset(2, num_scenes=6, hr_size=64)}
    train = {s.info["photo"] for s in DemoDataset(2, num_scenes=8, hr_size=64, split="train")}
    assert test and train and not test & train


def test_camera_model_zero_stops_without_noise_reproduces_photo():
    photo = np.random.default_rng(0).integers(0, 256, (8, 8, 3)) / 255.0
    assert np.allclose(srgb_encode(srgb_decode(photo)), photo, atol=1e-12)
    exposed = CameraModel(shot=0, read=0).expose(srgb_decode(photo), 0.0, np.random.default_rng(0))
    assert np.abs(exposed - photo).max() <= 0.5 / 255 + 1e-12


def test_bad_arguments():
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        open_dataset("flickr", 2, root=".")
    with pytest.raises(DatasetError, match="needs a root"):
        open_dataset("sice", 2)
    with pytest.raises(DatasetError, match="not found"):
        open_dataset("triples", 2, root="/nonexistent/folder")


def test_sice_says_which_folders_it_skips(sice_root):
    _img(sice_root / ".thumbnails" / "1.png", 22, 30, 0.5)
    _img(sice_root / ".thumbnails" / "2.png", 22, 30, 0.2)
    _img(sice_root / "7" / "1.png", 22, 30, 0.5)  # one exposure only
    with pytest.warns(UserWarning) as caught:
        names = open_dataset("sice", 2, root=sice_root).names()
    assert names == ["1", "2", "10"]
    messages = [str(w.message) for w in caught]
    assert any("skipped 1 hidden folder(s): .thumbnails" in m for m in messages)
    assert any("skipped 1 sequence(s) with fewer than two exposures: 7" in m for m in messages)


def test_float_tiff_values_above_one_are_clipped_with_a_warning(tmp_path):
    path = tmp_path / "hdr.tif"
    array = np.full((6, 5, 3), 0.5, np.float32)
    array[0, 0, 0], array[1, 1, 1] = 1.7, -0.2
    assert cv2.imwrite(str(path), array)
    with pytest.warns(UserWarning, match=r"hdr.tif: 2 float value\(s\) outside \[0, 1\].*clipped"):
        image = read_image(path)
    assert float(image.max()) == 1.0 and float(image.min()) == 0.0


def test_scene_name_with_bytes_that_are_not_utf8_is_named(tmp_path, capsys):
    import os

    from pipelines.cli import main

    data = tmp_path / "data"
    for role, level in (("over", 0.8), ("under", 0.1), ("gt", 0.5)):
        folder = data / role
        folder.mkdir(parents=True)
        _img(folder / "a.png", 48, 48, level)
        with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as handle:
            handle.write((folder / "a.png").read_bytes())
    config = tmp_path / "b.toml"
    config.write_text(f'[profiles.demo]\noutput_dir = "{tmp_path / "out"}"\ncache_dir = "{tmp_path / "cache"}"\n'
                      f'[profiles.demo.dataset]\nkind = "triples"\nroot = "{data}"\n')
    assert main(["--config", str(config), "run", "SRFBN+MGFF"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "not valid UTF-8" in err[0] and "caf" in err[0], err
    assert not (tmp_path / "cache" / "demo_weights").exists()


def test_scenes_without_hr_references_say_so_in_the_summary_and_the_report(tmp_path, capsys, monkeypatch):
    """CF-Net's `test_data` layout (LR pairs only): the run says it scored nothing and why, and the
    report says so too (not "run run-all first")."""
    import pipelines.demo_training
    from pipelines.cli import main
    from test_runner import seeded_weights

    monkeypatch.setattr(pipelines.demo_training, "train_demo_weights", seeded_weights)
    data = tmp_path / "test_data"
    _img(data / "lr_over" / "a.png", 24, 24, 0.8)
    _img(data / "lr_under" / "a.png", 24, 24, 0.1)
    config = tmp_path / "b.toml"
    config.write_text(f'[profiles.demo]\noutput_dir = "{tmp_path / "out"}"\ncache_dir = "{tmp_path / "cache"}"\n'
                      f'[profiles.demo.dataset]\nkind = "cfnet"\nroot = "{data}"\n')
    assert main(["--config", str(config), "run", "Fast-SPD-MEF+SRFBN"]) == 0
    out = capsys.readouterr().out
    assert "no scores: the scenes have no HR references" in out and "Empty DataFrame" not in out
    assert (tmp_path / "out" / "images" / "x2" / "Fast-SPD-MEF+SRFBN" / "a.png").is_file()
    assert main(["--config", str(config), "report"]) == 2
    err = capsys.readouterr().err
    assert "scored nothing" in err and "no HR references" in err and "run-all` first" not in err
