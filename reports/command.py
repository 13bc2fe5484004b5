"""`cfanet-bench report`: render Table 1, Figure 3, per-image scores, comparisons with the reference
method (CFANet in the paper's grid), runtimes and the run manifest from the profile's results database into one folder with an
`index.html` (readable offline). Reads the results store only: no torch, no model, no data set.
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
    p = subparsers.add_parser(
        "report", help="Table 1 (HTML, LaTeX), Figure 3 (PNG, PDF), per-image scores, significance, runtimes",
        description="Render the report of a profile's results database: Table 1 as in the paper (HTML and "
                    "LaTeX/booktabs), Figure 3 for one scene (PNG and PDF), per-image scores (HTML, CSV), every "
                    "method against the reference method, CFANet in the paper's grid (paired bootstrap 95% CI, "
                    "Wilcoxon signed-rank), runtime and "
                    "parameters per method and the run manifest, linked from one index.html.")
    p.add_argument("--profile", help="profile whose results to report (default: the config's default)")
    p.add_argument("--run", metavar="RUN_ID", help="report this run only (default: for each method, the latest "
                                                   "finished run that scored it)")
    p.add_argument("--output", metavar="DIR", help="folder to write (default: <profile output_dir>/report)")
    p.add_argument("--scene", metavar="NAME", help="scene of Figure 3, e.g. coffee-00 or x2/coffee-00 "
                                                   "(default: the first scene in sorted order)")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help="methods shown in Figure 3 (default: those of SRFBN+MGFF RCAN+Fast-SPD-MEF "
                        "SwinIR+MEF-Net DBPN+U2Fusion MGFF+SwinIR Fast-SPD-MEF+SRFBN MEF-Net+RCAN U2Fusion+DBPN "
                        "CF-Net CFANet that the run's grid holds and that have results)")
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
           scene: str | None = None, methods: list[str] | None = None, convention: str | None = None):
    """Render the report of `config`'s profile; returns `reports.build.ReportResult`."""
    from reports.build import build_report

    profile = config.profile(profile_name)
    database = Path(profile.output_dir) / "results.sqlite"
    target = Path(output) if output else Path(profile.output_dir) / "report"
    return build_report(database, target, run_id=run_id, profile=profile.name, scene=scene, methods=methods,
                        convention=convention or profile.metrics.convention, dataset=dataset_label(profile))


def cmd_report(args) -> int:
    from pipelines.config import find_config
    from reports.data import ReportError

    try:
        result = report(find_config(getattr(args, "config", None)), args.profile, run_id=args.run,
                        output=args.output, scene=args.scene, methods=args.methods, convention=args.convention)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(result.summary_lines()))
    print(f"wrote {len(result.files)} files to {result.output_dir}; open {result.index}")
    return 0
