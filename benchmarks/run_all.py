"""Speed of `run-all` on the demo profile: cold (demo training included), warm (everything
cached) and a one-pipeline rerun (`run RCAN+MGFF --force`), plus the harness overhead of the cold
run: its wall time over the time spent computing (stage computations + demo training).

    python benchmarks/run_all.py            # uses a fresh temporary cache and output folder
    python benchmarks/run_all.py --baseline-rev cba1150   # also a cold run of that revision, for the ratio

Targets on 2 CPU cores (issue 7): cold <= 10 min, warm <= 20 s, one-pipeline rerun <= 5 s,
overhead <= 1.10; issue 17: cold <= 4 min.

`--baseline-rev REV` first makes a cold run of the code at git revision REV (a temporary
`git worktree`, run with this interpreter and REV's own `benchmark.toml`), then the runs of the
working tree, so that both are measured on the same machine minutes apart and the speed-up is a
ratio of the two (cba1150 is the last revision with the earlier demo training: 32-pixel patches,
a validation every epoch, scenes generated per model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(config: Path, *args: str, code: Path = REPO) -> float:
    """Wall seconds of `cfanet-bench --config config args` run from the source tree `code` (`python -m`
    puts `code` first on the import path, so a worktree of another revision runs its own code)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "--config", str(config), *args], check=True, cwd=code,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def isolated_config(code: Path, root: Path) -> Path:
    """`code`'s own benchmark.toml with the output and cache folders moved under `root`."""
    base = (code / "benchmark.toml").read_text()
    config = root / "benchmark.toml"
    config.write_text(base.replace('output_dir = "results/demo"', f'output_dir = "{root / "results"}"')
                      .replace('cache_dir = "cache"', f'cache_dir = "{root / "cache"}"', 1))
    return config


def baseline_cold_seconds(rev: str, root: Path) -> float:
    """Wall seconds of a cold demo `run-all` of the code at git revision `rev`."""
    tree = root / "baseline-tree"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), rev], cwd=REPO, check=True)
    try:
        (root / "baseline").mkdir()
        return run_cli(isolated_config(tree, root / "baseline"), "run-all", code=tree)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


def training_seconds(weights: Path) -> float:
    """Training wall time of a demo-weights file, from its training folder's history.json."""
    history = weights.with_name(weights.stem + "_training") / "history.json"
    try:
        records = json.loads(history.read_text())
    except (OSError, json.JSONDecodeError):
        return 0.0
    records = records.get("history", records) if isinstance(records, dict) else records
    return max((float(r.get("seconds", 0.0)) for r in records if isinstance(r, dict)), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--baseline-rev", metavar="REV",
                        help="also time a cold run-all of git revision REV first and print the ratio")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cfanet-bench-runall-"))
    baseline = baseline_cold_seconds(args.baseline_rev, root) if args.baseline_rev else None
    config = isolated_config(REPO, root)
    cold = run_cli(config, "run-all")
    # The warm run and the rerun without the report (as issue 7 measured them, before runs rendered
    # it); the report's own time is measured once, on its own.
    warm = run_cli(config, "run-all", "--no-report")
    rerun = run_cli(config, "run", "RCAN+MGFF", "--force", "--no-report")
    report = run_cli(config, "report")

    connection = sqlite3.connect(root / "results" / "results.sqlite")
    first = json.loads(connection.execute("SELECT manifest FROM runs ORDER BY started LIMIT 1").fetchone()[0])
    training = sum(training_seconds(Path(w["path"])) for w in first["weights"].values() if w and w["source"] == "demo")
    scoring = float(first.get("scoring", {}).get("compute_seconds", 0.0))  # metrics computed in the executors
    compute = first["compute_seconds"] + training + scoring
    print(f"demo run-all on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  cold (incl. demo training): {cold:7.1f} s   target <= 240 s (issue 17; 600 s issue 7)")
    if baseline is not None:
        print(f"  cold at {args.baseline_rev}:        {baseline:7.1f} s   speed-up {baseline / cold:.2f}x")
    print(f"  warm (all cached):          {warm:7.1f} s   target <= 20 s (--no-report)")
    print(f"  one-pipeline rerun --force: {rerun:7.1f} s   target <= 5 s (--no-report)")
    print(f"  report alone:               {report:7.1f} s   (run and run-all render it after a run)")
    print(f"  cold run: {first['stages_computed']} stages, stage compute {first['compute_seconds']:.1f} s, "
          f"demo training {training:.1f} s, scoring compute {scoring:.1f} s, run wall {first['wall_seconds']:.1f} s")
    print(f"  harness overhead (run wall / (stage compute + training + scoring)): "
          f"{first['wall_seconds'] / compute:.3f}   target <= 1.10")
    print(f"  process wall incl. interpreter start and imports: cold {cold:.1f} s vs run wall "
          f"{first['wall_seconds']:.1f} s")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"kept {root}")


if __name__ == "__main__":
    main()
