"""The command line: help, list, doctor, score, run-all and user errors."""

import json
import subprocess
import sys

import pytest

from pipelines.cli import main


def test_help_via_console_script():
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("list", "doctor", "score", "run-all"):
        assert command in out.stdout


def test_list_shows_the_grid(capsys):
    from grid_counts import paper_counts

    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    specs = listing["pipelines"]
    names = [s["name"] for s in specs]
    assert len(names) == paper_counts().pipelines == len(set(names))
    assert "RCAN+MGFF" in names and "MGFF+RCAN" in names and names[-2:] == ["CF-Net", "CFANet"]
    kinds = {name: m["kind"] for name, m in listing["methods"].items() if m["in_grid"]}
    composed = sum(k == "sr" for k in kinds.values()) * sum(k == "mef" for k in kinds.values())
    assert sum(s["order"] == "SR+MEF" for s in specs) == composed == sum(s["order"] == "MEF+SR" for s in specs)
    methods = listing["methods"]
    assert methods["MGFF"]["weights"] == "no weights needed" and "demo weights" in methods["RCAN"]["weights"]
    assert "VGG" in methods["U2Fusion"]["note"]


def test_list_paper_profile_says_which_weights_are_missing(capsys):
    assert main(["list", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "RCAN.x2: MISSING" in out and "RCAN_BIX2.pt" in out


def test_doctor_reports_environment(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["packages"]["torch"].startswith("2.")
    assert report["device"]["device"] in ("cpu",) or report["device"]["cuda_available"]
    assert report["data"]["kind"] == "demo" and report["data"]["found"]
    assert "RCAN.x2" in report["weights"]


def test_doctor_paper_profile_names_missing_weights(capsys, tmp_path):
    config = tmp_path / "b.toml"
    weights = tmp_path / "RCAN_BIX2.pt"
    weights.write_bytes(b"x")
    config.write_text(f'[profiles.paper]\nscales = [2]\n[profiles.paper.dataset]\nkind = "sice"\nroot = "absent"\n'
                      f'[profiles.paper.weights]\n"RCAN.x2" = "{weights}"\n"DBPN.x2" = "nowhere.pth"\n'
                      f'[profiles.demo]\n')
    assert main(["--config", str(config), "doctor", "--profile", "paper", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["weights"]["RCAN.x2"]["found"] and not report["weights"]["DBPN.x2"]["found"]
    assert report["weights"]["DBPN.x2"]["path"].endswith("nowhere.pth") and not report["data"]["found"]


def test_score_sice400_paper_convention(shared_data, capsys):
    scene = shared_data / "sice400" / "textmef-001"
    args = ["score", "--over", str(scene / "over.png"), "--under", str(scene / "under.png"),
            "--fused", str(scene / "fused_TextMEF.png"), "--gt", str(scene / "gt.png")]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["convention"] == "paper" and "RGB" in result["convention_description"]
    assert result["psnr"] == pytest.approx(21.1731, abs=1e-4) and result["ssim"] == pytest.approx(0.9354, abs=1e-4)
    assert 0.5 < result["mef_ssim"] < 1 and len(result["mef_ssim_per_scale"]) == 3
    from cfanet.metrics.registry import METRICS

    assert all(metric.name in result for metric in METRICS)   # with --gt: every registered metric
    assert main(args + ["--convention", "sr"]) == 0
    sr = json.loads(capsys.readouterr().out)
    assert sr["convention"] == "sr" and sr["psnr"] != result["psnr"] and sr["mef_ssim"] == result["mef_ssim"]


def test_score_without_gt_gives_only_the_metrics_of_the_sources(shared_data, capsys):
    from cfanet.metrics.registry import METRICS

    scene = shared_data / "mefb" / "House"
    over, under, fused = (next(scene.glob(f"{n}.*")) for n in ("over", "under", "fused_MGFF"))
    assert main(["score", "--over", str(over), "--under", str(under), "--fused", str(fused)]) == 0
    result = json.loads(capsys.readouterr().out)
    for metric in METRICS:   # every registered metric that needs no ground truth, and no other
        assert (metric.name in result) == (metric.needs == "sources"), metric.name
    # MEFB's stored values for this scene and method (`mefb_metrics.csv`, 5 significant digits)
    assert result["mef_ssim"] == pytest.approx(0.96417, abs=5e-6)
    assert result["qabf"] == pytest.approx(0.79769, abs=5e-6) and "metricsQabf.m" in result["qabf_reference"]


def test_score_errors_name_the_file(tmp_path, capsys):
    import cv2
    import numpy as np

    for name, size in (("o.png", 64), ("u.png", 64), ("f.png", 60)):
        cv2.imwrite(str(tmp_path / name), np.zeros((size, size, 3), np.uint8))
    base = ["score", "--over", str(tmp_path / "o.png"), "--under", str(tmp_path / "u.png")]
    assert main(base + ["--fused", str(tmp_path / "missing.png")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
    assert main(base + ["--fused", str(tmp_path / "f.png")]) == 2
    assert "f.png 60x60" in capsys.readouterr().err


def test_invalid_config_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "b.toml"
    config.write_text("[profiles.demo]\nscales = 2\n")
    assert main(["--config", str(config), "doctor"]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "profiles.demo.scales" in err


def test_run_pipelines_on_demo_with_real_demo_training(capsys, tmp_path):
    config = tmp_path / "b.toml"
    config.write_text(f"""
[profiles.demo]
output_dir = "{tmp_path / 'out'}"
cache_dir = "{tmp_path / 'cache'}"
[profiles.demo.dataset]
num_scenes = 1
hr_size = 64
[profiles.demo.demo_training]
steps = 2
""")
    assert main(["--config", str(config), "run", "Fast-SPD-MEF+SRFBN", "SRFBN+MGFF"]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 stages computed" in out and "results database" in out and "SRFBN ran with DEMO weights" in out
    assert (tmp_path / "out" / "images" / "x2" / "SRFBN+MGFF" / "coffee-00.png").is_file()
    [weights] = (tmp_path / "cache" / "demo_weights").glob("SRFBN_x2_*.pt")
    from pipelines.weights import checkpoint_metadata

    assert checkpoint_metadata(weights)["steps"] == 2
    assert main(["--config", str(config), "run", "SRFBN+MGFF"]) == 0
    assert "0 of 3 stages computed" in capsys.readouterr().out
