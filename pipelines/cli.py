"""The `cfanet-bench` command line.

Each sub-command is a small function taking parsed arguments; errors the user can fix (bad config,
missing or corrupt files, wrong checkpoints) are printed as one `error:` line naming the file or
key, with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_USAGE = 2


def _config(args):
    from pipelines.config import find_config

    return find_config(args.config)


def cmd_list(args) -> int:
    from pipelines.catalog import all_pipelines
    from pipelines.registry import METHODS, weights_status

    profile = _config(args).profile(args.profile)
    specs = all_pipelines()
    weights = {}
    for name in METHODS:
        statuses = [weights_status(profile, name, scale) for scale in profile.scales]
        if statuses[0] is None:
            weights[name] = "no weights needed"
        else:
            weights[name] = "; ".join(
                f"{s.key}: " + ({"demo": "demo weights (small config, trained on first use)",
                                 "none": "NOT CONFIGURED"}.get(s.source) or
                                (f"found {s.path}" if s.found else f"MISSING {s.path}")) for s in statuses)
    if args.json:
        print(json.dumps({"profile": profile.name, "pipelines": [spec.__dict__ for spec in specs],
                          "methods": {name: {"kind": e.kind, "weights": weights[name], "note": e.note}
                                      for name, e in METHODS.items()}}, indent=2))
        return 0
    for order in ("SR+MEF", "MEF+SR", "joint"):
        group = [s.name for s in specs if s.order == order]
        print(f"{order} ({len(group)}):")
        print("  " + "\n  ".join(group))
    print(f"{len(specs)} methods")
    print(f"\ncomponents and their weights (profile {profile.name}):")
    for name, entry in METHODS.items():
        print(f"  {name:<13}{entry.kind:<6}{weights[name]}" + (f"  [{entry.note}]" if entry.note else ""))
    return 0


def cmd_doctor(args) -> int:
    from pipelines.doctor import doctor, format_doctor

    report = doctor(_config(args), args.profile)
    print(json.dumps(report, indent=2) if args.json else format_doctor(report))
    return 0


def _read_same_size(paths: dict[str, str]):
    from cfanet.data.degrade import check_same_size
    from cfanet.images import read_image

    images = {role: read_image(path) for role, path in paths.items() if path}
    check_same_size({paths[role]: tuple(img.shape[-2:]) for role, img in images.items()}, "score")
    return images


def cmd_score(args) -> int:
    from cfanet.metrics.mef_ssim import mef_ms_ssim
    from cfanet.metrics.psnr_ssim import get_convention, psnr, ssim

    convention = get_convention(args.convention)
    images = _read_same_size({"over": args.over, "under": args.under, "fused": args.fused, "gt": args.gt})
    result = {"fused": args.fused, "convention": convention.name, "convention_description": convention.describe(),
              "scale": args.scale}
    if "gt" in images:
        result["gt"] = args.gt
        result["psnr"] = psnr(images["fused"], images["gt"], convention=convention.name, scale=args.scale)
        result["ssim"] = ssim(images["fused"], images["gt"], convention=convention.name, scale=args.scale)
    mef = mef_ms_ssim([images["over"], images["under"]], images["fused"])
    result["mef_ssim"] = mef.score
    result["mef_ssim_per_scale"] = list(mef.per_scale)
    result["mef_ssim_reference"] = "official mef_ms_ssim.m (3 scales, rgb2gray on uint8), sources = over, under"
    print(json.dumps(result, indent=2, allow_nan=True))
    return 0


def cmd_apply(args) -> int:
    from pipelines.apply import apply_method, lookup

    weights = args.weights
    if weights is None:
        key, entry = lookup(args.method)
        if entry.needs_weights:
            from pipelines.catalog import weight_keys

            profile = _config(args).profile(args.profile)
            scales = (args.scale,) if args.scale else profile.scales
            configured = [profile.weights[k] for k in weight_keys(key, scales) if k in profile.weights]
            weights = configured[0] if configured else None
    summary = apply_method(args.method, args.output, over=args.over, under=args.under, image=args.input,
                           weights=weights, scale=args.scale, device=args.device)
    print(json.dumps(summary, indent=2))
    print(f"wrote {summary['output']}", file=sys.stderr)
    return 0


def _print_summary(summary, profile) -> None:
    import pandas as pd

    frame = pd.DataFrame(summary.results, columns=["scene", "method", "metric", "convention", "value"])
    main = profile.metrics.convention
    keep = frame[(frame.convention == main) | (frame.metric == "mef_ssim")]
    table = keep.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
    if "psnr" in table:
        table = table.sort_values("psnr", ascending=False)
    print()
    print(f"mean over {frame.scene.nunique()} scene(s); PSNR/SSIM convention '{main}', MEF-SSIM official:")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print()
    print(f"run {summary.run_id}: {summary.stages_computed} of {summary.stages_total} stages computed "
          f"({summary.stages_total - summary.stages_computed} from the cache), {summary.wall_seconds:.1f} s")
    print(f"results database: {summary.database}")
    print(f"images:           {summary.output_dir / 'images'}")
    print(f"stage cache:      {Path(profile.cache_dir) / 'stages'}")


def _run(args, pipelines, force: bool) -> int:
    from pipelines.runner import Runner

    config = _config(args)
    runner = Runner(config, args.profile)
    print(f"config {config.source}, profile {runner.profile.name}, device {runner.device}")
    summary = runner.run(pipelines, force=force)
    _print_summary(summary, runner.profile)
    demo = runner.manifest()["demo_weights"]
    if demo:
        print(f"note: {', '.join(demo)} ran with DEMO weights (small configurations trained briefly on the demo "
              f"train split), not the authors' weights")
    return 0


def cmd_run_all(args) -> int:
    return _run(args, None, args.force)


def cmd_run(args) -> int:
    return _run(args, args.pipelines, args.force)


def build_parser() -> argparse.ArgumentParser:
    from cfanet import __version__

    parser = argparse.ArgumentParser(
        prog="cfanet-bench",
        description="Benchmark of joint multi-exposure fusion and super-resolution: CFANet, CF-Net and "
                    "32 SR/MEF compositions.")
    parser.add_argument("--version", action="version", version=f"cfanet-bench {__version__}")
    parser.add_argument("--config", help="benchmark.toml to use (default: $CFANET_BENCH_CONFIG, ./benchmark.toml, "
                                         "or the built-in demo profile)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="the 34 methods (SR+MEF, MEF+SR, joint) and whether their weights are found")
    p.add_argument("--profile", help="profile whose weights to check (default: the config's default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("doctor", help="python/torch versions, device, data and weights found")
    p.add_argument("--profile", help="profile to check (default: the config's default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("score", help="PSNR/SSIM (with --gt) and MEF-SSIM of one fused image, as JSON")
    p.add_argument("--over", required=True, help="HR over-exposed source (MEF-SSIM reference)")
    p.add_argument("--under", required=True, help="HR under-exposed source (MEF-SSIM reference)")
    p.add_argument("--fused", required=True, help="the fused (and upscaled) image to score")
    p.add_argument("--gt", help="ground truth for PSNR and SSIM")
    p.add_argument("--convention", choices=("paper", "sr"), default="paper",
                   help="paper: RGB, no crop (CF-Net's code); sr: Y channel, crop = scale (BasicSR)")
    p.add_argument("--scale", type=int, default=2, help="SR factor; the sr convention crops this many pixels (default 2)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("apply", help="run one method on one pair (MEF, joint) or one image (SR)")
    p.add_argument("method", help="MGFF, Fast-SPD-MEF, MEF-Net, U2Fusion, CF-Net, DBPN, RCAN, SRFBN or SwinIR")
    p.add_argument("--over", help="over-exposed input image (MEF and joint methods)")
    p.add_argument("--under", help="under-exposed input image (MEF and joint methods)")
    p.add_argument("--input", help="low-resolution input image (SR models)")
    p.add_argument("-o", "--output", required=True, help="where to write the result (PNG, TIFF, BMP or JPEG)")
    p.add_argument("--weights", help="checkpoint of a deep method (default: the profile's configured file)")
    p.add_argument("--scale", type=int, help="scale of an SR or joint model (default: read from the weights)")
    p.add_argument("--profile", help="profile whose weights to use when --weights is not given")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.set_defaults(func=cmd_apply)

    from pipelines.train_command import add_train_parser

    add_train_parser(sub)

    p = sub.add_parser("run-all", help="run all 34 methods on the profile's dataset (cached, resumable)")
    p.add_argument("--profile", help="profile to run (default: the config's default, demo)")
    p.add_argument("--force", action="store_true", help="recompute every stage instead of using the cache")
    p.set_defaults(func=cmd_run_all)

    p = sub.add_parser("run", help="run some pipelines, e.g. RCAN+MGFF MGFF+RCAN CFANet")
    p.add_argument("pipelines", nargs="+", metavar="PIPELINE", help="pipeline names as `list` shows them")
    p.add_argument("--profile", help="profile to run (default: the config's default, demo)")
    p.add_argument("--force", action="store_true", help="recompute these pipelines' stages")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from cfanet.checkpoint import CheckpointError
    from cfanet.data.scene import DatasetError
    from cfanet.images import ImageFileError
    from pipelines.config import ConfigError

    try:
        return args.func(args)
    except (ConfigError, DatasetError, ImageFileError, CheckpointError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:
        if "CUDA" not in str(exc) and "cuda" not in str(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
