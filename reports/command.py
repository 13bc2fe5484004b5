"""`cfanet-bench report`: render Table 1 (beside the paper's own numbers at x2), Figure 3, per-image scores,
comparisons with the reference method (CFANet in the paper's grid), runtimes and the run manifest from the
profile's results database into one folder with an `index.html` (readable offline). Reads the results store
only: no torch, no model, no data set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2
DATASET_LABELS = {
    "demo": "the demo scenes (scikit-image photographs through a simulated camera)",
    "sice": "SICE",
    "cfnet": "CF-Net's test data",
}


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `report` sub-command to an argparse sub-parser collection; returns its parser."""
    from reports.paper_reference import load_paper_reference

    paper = load_paper_reference()
    p = subparsers.add_parser(
        "report", help="Table 1 (HTML, LaTeX) beside the paper's numbers, Figure 3 (PNG, PDF), per-image scores, "
                       "significance, runtimes",
        description=f"Render the report of a profile's results database: Table 1 as in the paper (HTML and "
                    f"LaTeX/booktabs) and, at x{paper.scale}, beside the paper's own Table 1 ({paper.short_citation}; "
                    f"ours, paper, ours - paper per method, Kendall's tau-b of the rankings, a scatter), Figure 3 "
                    f"for one scene with the paper's panels (PNG and PDF), per-image scores (HTML, CSV), every "
                    f"method against the reference method, CFANet in the paper's grid (paired bootstrap 95% CI, "
                    f"Wilcoxon signed-rank), runtime and "
                    f"parameters per method and the run manifest, linked from one index.html.")
    p.add_argument("--profile", help="profile whose results to report (default: the config's default)")
    p.add_argument("--run", metavar="RUN_ID", help="report this run only (default: for each method, the latest "
                                                   "finished run that scored it)")
    p.add_argument("--output", metavar="DIR", help="folder to write (default: <profile output_dir>/report)")
    p.add_argument("--scene", metavar="NAME", help="scene of Figure 3, e.g. coffee-00 or x2/coffee-00 "
                                                   "(default: the first scene in sorted order)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help=f"methods shown in Figure 3, in this order after the two inputs (default: the paper's "
                        f"selection, in its order: {' '.join(paper.figure3_methods)}; those that the run's grid "
                        f"holds and that have results)")
    p.add_argument("--gt-panel", action="store_true",
                   help="end Figure 3 with the HR ground truth as one more panel (default: off; the paper's "
                        "figure has none)")
    p.add_argument("--convention", choices=("paper", "sr"),
                   help="PSNR/SSIM convention of Table 1, Figure 3 and the comparisons "
                        "(default: the profile's metrics.convention)")
    p.set_defaults(func=cmd_report)
    return p


def dataset_label(profile) -> str:
    """A short name of the profile's data set for captions."""
    data = profile.dataset
    if data.kind in DATASET_LABELS:
        return DATASET_LABELS[data.kind]
    return f"the scenes under {data.root.name}" if data.root else data.kind


def report(config, profile_name: str | None = None, *, run_id: str | None = None, output: str | Path | None = None,
           scene: str | None = None, methods: list[str] | None = None, convention: str | None = None,
           gt_panel: bool = False):
    """Render the report of `config`'s profile; returns `reports.build.ReportResult` (`.index`, the
    files, `.summary_lines()` with the comparison with the paper as `paper:` lines). `gt_panel`: Figure
    3 ends with the ground truth."""
    from reports.build import build_report

    profile = config.profile(profile_name)
    database = Path(profile.output_dir) / "results.sqlite"
    target = Path(output) if output else Path(profile.output_dir) / "report"
    return build_report(database, target, run_id=run_id, profile=profile.name, scene=scene, methods=methods,
                        convention=convention or profile.metrics.convention, dataset=dataset_label(profile),
                        gt_panel=gt_panel, dataset_kind=profile.dataset.kind)


def cmd_report(args) -> int:
    from pipelines.config import find_config
    from reports.data import ReportError

    try:
        result = report(find_config(getattr(args, "config", None)), args.profile, run_id=args.run,
                        output=args.output, scene=args.scene, methods=args.methods, convention=args.convention,
                        gt_panel=getattr(args, "gt_panel", False))
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(result.summary_lines()))
    print(f"wrote {len(result.files)} files to {result.output_dir}; open {result.index}")
    return 0
