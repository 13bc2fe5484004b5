"""`cfanet-bench apply`: one method on one pair of files, from the command line."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cfanet.images import read_image_array
from pipelines.cli import main


@pytest.mark.parametrize("method, published", [("MGFF", "fused_MGFF"), ("Fast-SPD-MEF", "fused_FMMEF"),
                                               ("fast-spd-mef", "fused_FMMEF")])
def test_apply_reproduces_published_output(shared_data, tmp_path, capsys, method, published):
    scene = shared_data / "mefb" / "House"
    over, under, reference = (next(scene.glob(f"{n}.*")) for n in ("over", "under", published))
    out = tmp_path / "fused.png"
    assert main(["apply", method, "--over", str(over), "--under", str(under), "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["seconds"] > 0
    np.testing.assert_array_equal(read_image_array(out), read_image_array(reference))


def _pair(tmp_path, size_under=(40, 52)):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "o.png"), rng.integers(120, 256, (40, 52, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "u.png"), rng.integers(0, 100, (*size_under, 3), dtype=np.uint8))
    return ["--over", str(tmp_path / "o.png"), "--under", str(tmp_path / "u.png")]


def test_apply_on_synthetic_pair_writes_same_size(tmp_path, capsys):
    assert main(["apply", "MGFF", *_pair(tmp_path), "-o", str(tmp_path / "out" / "f.tif")]) == 0
    assert read_image_array(tmp_path / "out" / "f.tif").shape == (40, 52, 3)


def test_apply_errors_name_the_problem(tmp_path, capsys):
    assert main(["apply", "Mertens", *_pair(tmp_path), "-o", str(tmp_path / "f.png")]) == 2
    assert "unknown method 'Mertens'" in capsys.readouterr().err
    assert main(["apply", "MGFF", *_pair(tmp_path, (40, 50)), "-o", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "u.png 40x50" in err and "o.png 40x52" in err and not (tmp_path / "f.png").exists()
    (tmp_path / "u.png").write_bytes(b"corrupt")
    assert main(["apply", "MGFF", "--over", str(tmp_path / "o.png"), "--under", str(tmp_path / "u.png"),
                 "-o", str(tmp_path / "f.png")]) == 2
    assert "u.png" in capsys.readouterr().err


def test_apply_sr_model_with_weights_file(tmp_path, capsys):
    import torch

    from baselines.sr.srfbn import SRFBN

    model = SRFBN.create(2, size="official", seed=0)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.network.state_dict().items()}}, tmp_path / "w.pth")
    cv2.imwrite(str(tmp_path / "lr.png"), np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    out = tmp_path / "sr.png"
    assert main(["apply", "SRFBN", "--input", str(tmp_path / "lr.png"), "--weights", str(tmp_path / "w.pth"),
                 "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "sr" and summary["size"] == [24, 20]
    from cfanet.images import quantize, read_image

    expected = model.upscale(read_image(tmp_path / "lr.png"))
    np.testing.assert_array_equal(read_image_array(out), quantize(expected[0].permute(1, 2, 0)))


def test_apply_deep_method_without_weights_is_a_clear_error(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "lr.png"), np.zeros((8, 8, 3), np.uint8))
    config = tmp_path / "b.toml"
    config.write_text("[profiles.demo]\n")
    assert main(["--config", str(config), "apply", "RCAN", "--input", str(tmp_path / "lr.png"), "-o",
                 str(tmp_path / "o.png")]) == 2
    assert "RCAN needs weights" in capsys.readouterr().err
    assert main(["apply", "MGFF", "--input", str(tmp_path / "lr.png"), "-o", str(tmp_path / "o.png")]) == 2
    assert "give --over and --under" in capsys.readouterr().err


@pytest.mark.parametrize("method, weights, published, min_psnr", [
    ("MEF-Net", "weights/mefnet/MEFNet_release.pt", "fused_MEFNet", 60.0),
    ("U2Fusion", "weights/u2fusion/model.ckpt", "fused_U2Fusion", 80.0),
])
def test_apply_deep_mef_with_official_weights(shared_data, tmp_path, capsys, method, weights, published, min_psnr):
    from cfanet.metrics.psnr_ssim import psnr

    scene = shared_data / "mefb" / "House"
    over, under, reference = (next(scene.glob(f"{n}.*")) for n in ("over", "under", published))
    out = tmp_path / "fused.png"
    assert main(["apply", method, "--over", str(over), "--under", str(under), "--weights",
                 str(shared_data / weights), "-o", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["weights"].endswith(Path(weights).name)
    assert psnr(read_image_array(out), read_image_array(reference), "paper") >= min_psnr


def test_apply_cfnet_upscales_the_pair(tmp_path, capsys):
    import torch

    from baselines.joint.cfnet import CFNet

    model = CFNet.create(2, size="small", seed=0)
    torch.save({"model": model.network.state_dict(), "loss": []}, tmp_path / "cfnet.pth")
    args = _pair(tmp_path)
    assert main(["apply", "CF-Net", *args, "--weights", str(tmp_path / "cfnet.pth"), "-o", str(tmp_path / "f.png")]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == [80, 104]
