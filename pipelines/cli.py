"""The `cfanet-bench` command line.

Each sub-command is a small function taking parsed arguments; errors the user can fix (bad config,
missing or corrupt files, wrong checkpoints, a scene a model cannot process) are printed as one
`error:` line naming the file or key, with exit status 2 and no traceback. Anything else (a bug)
is one `error: internal error ...` line with exit status 1. `--debug` (before or after the
sub-command) shows the full traceback instead. Warnings (an alpha channel dropped, ...) are one
`warning:` line each. SIGTERM, which schedulers send before killing a job, stops a run like Ctrl-C:
the run is recorded as interrupted and the cache keeps every finished stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import warnings
from pathlib import Path

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _config(args):
    from pipelines.config import find_config

    return find_config(args.config)


def cmd_list(args) -> int:
    from pipelines.catalog import ORDERS, profile_grid
    from pipelines.registry import check_protocols, check_weights_keys, methods, weights_status

    config = _config(args)
    profile = config.profile(args.profile)
    table = methods(config)
    grid = profile_grid(table, profile.grid, config.source, profile.name)
    check_weights_keys(config, profile, table)
    check_protocols(config, profile, table)
    protocols = {name: e.protocol_for(profile.runtime.protocol_of(name)) for name, e in table.specs.items()}
    specs = grid.pipelines()
    in_grid = {name for spec in specs for name in spec.components}
    weights = {}
    for name, entry in table.specs.items():
        statuses = [weights_status(profile, entry, scale) for scale in profile.scales]
        if statuses[0] is None:
            weights[name] = "no weights needed"
        else:
            weights[name] = "; ".join(
                f"{s.key}: " + ({"demo": "demo weights (small config, trained on first use)",
                                 "none": "NOT CONFIGURED"}.get(s.source) or
                                (f"found {s.path}" if s.found else f"MISSING {s.path}")) for s in statuses)
    if args.json:
        print(json.dumps({"profile": profile.name, "pipelines": [spec.describe() for spec in specs],
                          "methods": {name: {**e.describe(), "weights": weights[name], "in_grid": name in in_grid,
                                             "protocol": protocols[name]}
                                      for name, e in table.specs.items()}}, indent=2))
        return 0
    for order in ORDERS:
        group = [s.name for s in specs if s.order == order]
        print(f"{order} ({len(group)}):")
        print("  " + "\n  ".join(group))
    print(f"{len(specs)} methods ({len(grid.sr)} SR x {len(grid.mef)} MEF both ways + {len(grid.joint)} joint)")
    print(f"\nregistered methods, the inference protocol they run under and their weights (profile "
          f"{profile.name}; * = in the grid):")
    for name, entry in table.specs.items():
        note = entry.note or entry.not_trainable
        source = "" if entry.source == "built-in" else f"  <{entry.source}>"
        print(f"  {'*' if name in in_grid else ' '} {name:<13}{entry.kind:<6}{protocols[name]:<9}{weights[name]}{source}"
              + (f"  [{note}]" if note else ""))
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
    """Every metric of the registry that the given files allow (those needing the ground truth only
    with --gt), as JSON: `<name>` the score, `<name>_<fact>` metric-specific facts (MEF-SSIM's
    per-scale values), `<name>_reference` how a convention-free metric is computed."""
    from cfanet.metrics.psnr_ssim import get_convention
    from cfanet.metrics.registry import METRICS, References

    convention = get_convention(args.convention)
    images = _read_same_size({"over": args.over, "under": args.under, "fused": args.fused, "gt": args.gt})
    refs = References(gt=images.get("gt"), gt_over=images["over"], gt_under=images["under"])
    result = {"fused": args.fused, "convention": convention.name, "convention_description": convention.describe(),
              "scale": args.scale}
    if "gt" in images:
        result["gt"] = args.gt
    for metric in METRICS:
        if not metric.available(refs):
            continue
        value, extras = metric.compute_details(images["fused"], refs, convention.name, args.scale)
        result[metric.name] = value
        result.update({f"{metric.name}_{key}": item for key, item in extras.items()})
        if not metric.convention_dependent:
            result[f"{metric.name}_reference"] = metric.description
    print(json.dumps(_strict_json(result), indent=2, allow_nan=False))
    return 0


def _strict_json(value, key: str = ""):
    """`value` with every non-finite number replaced by null (strict JSON has no Infinity or NaN);
    what it was is said in `<key>_non_finite` next to it ("inf": e.g. PSNR of identical images)."""
    import math

    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[k] = _strict_json(v, k)
            if isinstance(v, float) and not math.isfinite(v):
                out[f"{k}_non_finite"] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return out
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_protocols(values: list[str] | None) -> tuple[str | None, dict[str, str]]:
    """`--protocol` values: "exact" / "official" for every method, or METHOD=PROTOCOL for one
    (repeatable). Returns (the protocol for every method or None, per-method protocols)."""
    from cfanet.protocols import PROTOCOLS

    every, per_method = None, {}
    for value in values or []:
        name, _, protocol = value.rpartition("=")
        if protocol not in PROTOCOLS or (value.count("=") and not name.strip()):
            raise ValueError(f"--protocol {value!r}: expected {' or '.join(PROTOCOLS)}, or METHOD=PROTOCOL "
                             f"(e.g. RCAN=official)")
        if name:
            per_method[name.strip()] = protocol
        else:
            every = protocol
    return every, per_method


def with_protocols(config, profile_name: str | None, values: list[str] | None):
    """`config` with the profile's `runtime.protocol` / `runtime.protocols` overridden by `--protocol`."""
    import dataclasses

    from pipelines.registry import methods

    every, per_method = parse_protocols(values)
    if every is None and not per_method:
        return config
    table = methods(config)
    for name, protocol in per_method.items():
        spec = table.find(name)
        if spec is None or protocol not in spec.protocols:
            problem = "no such method" if spec is None else f"it has: {', '.join(spec.protocols)}"
            raise ValueError(f"--protocol {name}={protocol}: {problem}")
    profile = config.profile(profile_name)
    runtime = profile.runtime
    # a protocol for every method replaces the profile's per-method settings too
    protocols = per_method if every is not None else {**runtime.protocols, **per_method}
    runtime = dataclasses.replace(runtime, protocol=every or runtime.protocol, protocols=protocols)
    profiles = {**config.profiles, profile.name: dataclasses.replace(profile, runtime=runtime)}
    return dataclasses.replace(config, profiles=profiles)


def add_protocol_argument(parser, scope: str = "") -> None:
    """`--protocol` (repeatable; read by `parse_protocols`)."""
    parser.add_argument("--protocol", action="append", metavar="PROTOCOL",
                        help="inference protocol: exact (the default: the network on the whole image, rounded once) "
                             "or official (the method's release script, bit for bit)" + scope)


def cmd_apply(args) -> int:
    from pipelines.apply import apply_method
    from pipelines.registry import method

    config = _config(args)
    spec = method(args.method, config)
    every, per_method = parse_protocols(args.protocol)
    protocol = next((p for name, p in per_method.items() if name.lower() == spec.name.lower()), every or "exact")
    if protocol not in spec.protocols:
        raise ValueError(f"--protocol {protocol}: {spec.name} has no {protocol!r} protocol (it has: "
                         f"{', '.join(spec.protocols)})")
    weights = args.weights
    size = None
    if weights is None and spec.deep:
        # The profile's weights: a configured file, or demo weights that a run has already made.
        from pipelines.registry import check_weights_keys, methods, weights_status
        from pipelines.weights import demo_weights_path

        profile = config.profile(args.profile)
        check_weights_keys(config, profile, methods(config))
        scale = args.scale or profile.scales[0]
        status = weights_status(profile, spec, scale)
        if status.source == "configured":
            weights = status.path
        elif status.source == "demo":
            demo = demo_weights_path(profile, spec, scale, Path(profile.cache_dir))
            if not demo.is_file():
                raise KeyError(f"{spec.name} needs weights: pass --weights FILE, configure weights.\"{status.key}\" in "
                               f"{config.source}, or make the demo weights with `cfanet-bench run {spec.name}` first")
            weights, size = demo, "small"
    try:
        summary = apply_method(spec, args.output, over=args.over, under=args.under, image=args.input,
                               weights=weights, scale=args.scale, device=args.device, size=size,
                               protocol=protocol)
    except ValueError as exc:
        from cfanet.checkpoint import CheckpointError
        from cfanet.data.scene import DatasetError
        from pipelines.config import ConfigError

        if isinstance(exc, (ConfigError, DatasetError, CheckpointError)):
            raise
        # a model refusing its input (e.g. an image smaller than its window): name the files
        files = ", ".join(str(f) for f in (args.input, args.over, args.under) if f)
        raise ValueError(f"{files}: {exc}") from exc
    print(json.dumps(summary, indent=2))
    print(f"wrote {summary['output']}", file=sys.stderr)
    return 0


def _print_summary(summary, profile) -> None:
    import pandas as pd

    from cfanet.metrics.registry import METRICS

    frame = pd.DataFrame(summary.results, columns=["scene", "method", "metric", "convention", "value"])
    main = profile.metrics.convention
    if frame.empty:
        print("\nno scores: the scenes have no HR references (ground truth or HR exposures) to score against")
    else:
        keep = frame[frame.convention.isin([main, "official"])]
        table = keep.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
        table = table[[m.name for m in METRICS if m.name in table.columns]]
        if "psnr" in table:
            table = table.sort_values("psnr", ascending=False)
        print()
        print(f"mean over {frame.scene.nunique()} scene(s); PSNR/SSIM convention '{main}', the other metrics official:")
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print()
    print(f"run {summary.run_id}: {summary.stages_computed} of {summary.stages_total} stages computed "
          f"({summary.stages_total - summary.stages_computed} from the cache), {summary.wall_seconds:.1f} s")
    if summary.modcropped:
        print(f"note: {len(summary.modcropped)} scene(s) had HR sizes not divisible by the scale and were cropped "
              f"to a multiple of it (modcrop; listed in the run manifest)")
    for method, scene, tiles in summary.memory_retries:
        print(f"note: {method} on {scene} ran out of device memory and was retried with {tiles[-1]}-pixel tiles")
    print(f"results database: {summary.database}")
    print(f"images:           {summary.output_dir / 'images'}")
    print(f"stage cache:      {Path(profile.cache_dir) / 'stages'}")


def _run(args, pipelines, force: bool) -> int:
    from pipelines.runner import Runner

    config = with_protocols(_config(args), args.profile, args.protocol)
    # progress bars only on a terminal: logs and pipes get plain lines
    runner = Runner(config, args.profile, show_progress=sys.stderr.isatty(), executor=args.executor,
                    allow_trained_scenes=args.allow_trained_scenes)
    print(f"config {config.source}, profile {runner.profile.name}, device {runner.device}, "
          f"executor {runner.executor_name}")
    summary = runner.run(pipelines, force=force)
    _print_summary(summary, runner.profile)
    demo = runner.manifest()["demo_weights"]
    if demo:
        print(f"note: {', '.join(demo)} ran with DEMO weights (small configurations trained briefly on the demo "
              f"train split), not the authors' weights")
    if getattr(args, "no_report", False):
        return 0
    return _render_report(config, runner.profile.name)


def _render_report(config, profile_name: str) -> int:
    """Render the profile's report after a run (the CLI is the composition root: the engine never
    imports `reports/`). A failure here loses nothing: the results are stored; it names the cause and
    the command that retries."""
    from reports.command import report
    from reports.data import ReportError

    try:
        result = report(config, profile_name)
    except ReportError as exc:  # nothing to report (e.g. no scores): not a failure of the run
        print(f"warning: no report: {one_line(exc)}", file=sys.stderr)
        return 0
    except (OSError, ValueError) as exc:
        print(f"error: the results are stored, but the report could not be rendered: {one_line(exc)}; "
              f"retry with `cfanet-bench report --profile {profile_name}`", file=sys.stderr)
        return 1
    # the run has already listed its demo weights; the file listing is for `report` itself
    for line in result.summary_lines():
        if not line.startswith(("  ", "report:", "note:")):
            print(line)
    print(f"report: {result.index} (Table 1, Figure 3, per-image scores, statistics, runtime; comparison viewer: viewer.html)")
    return 0


def cmd_run_all(args) -> int:
    return _run(args, None, args.force)


def cmd_run(args) -> int:
    return _run(args, args.pipelines, args.force)


def _add_debug(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the full traceback of an error instead of one line")


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
    _add_debug(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="the profile's compared methods (SR+MEF, MEF+SR, joint), every registered method and whether its weights are found")
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
    add_protocol_argument(p)
    p.set_defaults(func=cmd_apply)

    from pipelines.train_command import add_train_parser

    add_train_parser(sub)

    from reports.command import add_report_parser  # the report sub-command belongs to the reports layer

    add_report_parser(sub)

    p = sub.add_parser("run-all", help="run every method of the profile's grid on its dataset (cached, resumable)")
    p.add_argument("--profile", help="profile to run (default: the config's default, demo)")
    p.add_argument("--force", action="store_true", help="recompute every stage instead of using the cache")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where stages run: this process (local) or a Ray cluster (ray; extra 'distributed'); "
                        "default: the profile's runtime.executor")
    p.add_argument("--no-report", action="store_true",
                   help="do not render the report (Table 1, Figure 3, ...) at the end; `report` renders it later")
    p.add_argument("--allow-trained-scenes", action="store_true",
                   help="score methods even on scenes their weights record having been trained or validated on "
                        "(refused by default; the manifest records the overlap)")
    add_protocol_argument(p, " for every method, or METHOD=PROTOCOL for one (repeatable); overrides the "
                             "profile's runtime.protocol(s)")
    p.set_defaults(func=cmd_run_all)

    p = sub.add_parser("run", help="run some pipelines, e.g. RCAN+MGFF MGFF+RCAN CFANet")
    p.add_argument("pipelines", nargs="+", metavar="PIPELINE", help="pipeline names as `list` shows them")
    p.add_argument("--profile", help="profile to run (default: the config's default, demo)")
    p.add_argument("--force", action="store_true", help="recompute these pipelines' stages")
    p.add_argument("--executor", choices=["local", "ray"], default=None,
                   help="where stages run: this process (local) or a Ray cluster (ray; extra 'distributed'); "
                        "default: the profile's runtime.executor")
    p.add_argument("--no-report", action="store_true",
                   help="do not render the report at the end; `report` renders it later")
    p.add_argument("--allow-trained-scenes", action="store_true",
                   help="score methods even on scenes their weights record having been trained or validated on "
                        "(refused by default; the manifest records the overlap)")
    add_protocol_argument(p, " for every method, or METHOD=PROTOCOL for one (repeatable); overrides the "
                             "profile's runtime.protocol(s)")
    p.set_defaults(func=cmd_run)

    for command in sub.choices.values():  # `--debug` also after the sub-command
        if not any("--debug" in action.option_strings for action in command._actions):
            _add_debug(command, argparse.SUPPRESS)
    return parser


def one_line(exc: BaseException) -> str:
    """An error as one line naming the file or key: multi-line messages are joined with "; ", and a
    checkpoint mismatch is summarised as counts and the first few keys of each kind."""
    from cfanet.checkpoint import CheckpointMismatchError

    if isinstance(exc, CheckpointMismatchError):
        def some(keys: list[str], n: int = 3) -> str:
            return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")

        parts = []
        if exc.missing:
            parts.append(f"{len(exc.missing)} missing key(s) ({some(exc.missing)})")
        if exc.unexpected:
            parts.append(f"{len(exc.unexpected)} unexpected key(s) ({some(exc.unexpected)})")
        if exc.mis_shaped:
            name, got, want = exc.mis_shaped[0]
            parts.append(f"{len(exc.mis_shaped)} shape mismatch(es) (first: {name} checkpoint {list(got)}, "
                         f"model {list(want)})")
        return f"{exc.source}: the weights do not match the model (another model's file?): " + ", ".join(parts)
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.filename and exc.strerror and not str(exc).startswith(str(exc.filename)):
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()).replace(":; ", ": ")


def _user_error_types() -> tuple[type, ...]:
    import sqlite3

    from cfanet.checkpoint import CheckpointError
    from cfanet.data.scene import DatasetError
    from cfanet.images import ImageFileError
    from pipelines.config import ConfigError
    from pipelines.runner import StageError

    return (ConfigError, DatasetError, ImageFileError, CheckpointError, StageError, KeyError, ValueError, OSError,
            sqlite3.OperationalError)


def _one_line_warnings() -> None:
    """Warnings as `warning: <message>` lines (no source line), each distinct message once."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            print(f"warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show


def _interrupt_on_sigterm():
    """Make SIGTERM raise KeyboardInterrupt; returns the previous handler (None if unchanged)."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    debug = bool(getattr(args, "debug", False))
    previous_sigterm = _interrupt_on_sigterm()
    previous_showwarning = warnings.showwarning
    if not debug:
        _one_line_warnings()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted: finished stages are kept in the cache; run the command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line per error unless --debug
        if debug:
            raise
        if isinstance(exc, _user_error_types()) or (isinstance(exc, RuntimeError) and "cuda" in str(exc).lower()):
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"error: internal error ({type(exc).__name__}): {one_line(exc)} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = previous_showwarning
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


if __name__ == "__main__":
    sys.exit(main())
