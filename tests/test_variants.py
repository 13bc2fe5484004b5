"""Several trained CFANet variants side by side: each is another name for the CFANet class in
`benchmark.toml` (`[methods."CFANet-raw"]`) with its own weights file; the checkpoint alone rebuilds
its configuration, and Table 1 gets one row per variant."""

import csv


from cfanet.network import CFANet
from pipelines.cli import main
from pipelines.registry import method


def test_variants_stand_side_by_side_as_separate_rows(tmp_path, capsys):
    default = CFANet.create(2, "small", seed=0).save(tmp_path / "cfanet.pt")
    raw = CFANet.create(2, "small", seed=1, ablation="raw_feedback").save(tmp_path / "cfanet_raw.pt")
    config = tmp_path / "benchmark.toml"
    config.write_text(f"""
[methods."CFANet-raw"]
target = "cfanet.network:CFANet"
weights = {{ x2 = "{raw}" }}
note = "CFANet, feedback of the raw G_t (ablation raw_feedback)"

[profiles.demo]
output_dir = "{tmp_path / 'out'}"
cache_dir = "{tmp_path / 'cache'}"
[profiles.demo.dataset]
num_scenes = 2
hr_size = 48
[profiles.demo.weights]
"CFANet.x2" = "{default}"
[profiles.demo.grid]
sr = []
mef = []
joint = ["CFANet", "CFANet-raw"]
""")
    from pipelines.config import load_config

    variant = method("CFANet-raw", load_config(config))
    # another name for a paper method is not the paper's: it joins a grid only where listed
    assert variant.cls is CFANet and variant.paper_order is None and not variant.proposed
    assert CFANet.from_checkpoint(raw).config.feedback == "raw"  # no flags needed at evaluation
    assert CFANet.from_checkpoint(default).config.feedback == "attended"

    assert main(["--config", str(config), "run-all"]) == 0
    with open(tmp_path / "out" / "report" / "table1_x2.csv", newline="") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"CFANet", "CFANet-raw"}
    psnr = next(k for k in rows["CFANet"] if k.lower().startswith("psnr"))
    assert rows["CFANet"][psnr] != rows["CFANet-raw"][psnr]  # two networks, two results
    images = tmp_path / "out" / "images" / "x2"
    assert (images / "CFANet").is_dir() and (images / "CFANet-raw").is_dir()
