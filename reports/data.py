"""Read a results database (`pipelines.store` layout) into pandas, read-only, without torch.

Which results a report shows:

- `run_id` given: that run's results only (any status; a run that did not finish is flagged).
- otherwise, per method, the results of the latest *finished* run of the profile that scored it.
  After `run-all` this is that run; after a later `run RCAN+MGFF --force` it is the new run for
  RCAN+MGFF and the earlier one for the others. Every contributing run is listed with its
  manifest, and differences between them that matter (configuration, code, weights of a shared
  component) become warnings printed on every page.

Which methods and metrics, in which order: the contributing runs' manifests say (`grid`, read by
`reports.grid`; `metrics`, read by `reports.metrics`), with fallbacks for databases written before
the manifests recorded them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.grid import Grid, collect_grid
from reports.metrics import OFFICIAL, MetricInfo, collect_metrics

CONVENTIONS = {
    "paper": "RGB, data range 255, no border crop (CF-Net's own validation code); SSIM is the mean over the "
             "three channels of the 11x11 Gaussian (sigma 1.5) SSIM",
    "sr": "the SR field's (BasicSR): Y channel of MATLAB rgb2ycbcr, as many pixels as the scale factor cropped from each border, "
          "same SSIM",
}
_SCENE = re.compile(r"^x(\d+)/(.+)$", re.S)


class ReportError(ValueError):
    """Something the user can fix (no database, unknown run, scene or method); one line of text."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    profile: str
    started: float
    finished: float | None
    status: str
    manifest: dict

    @property
    def demo_weights(self) -> list[str]:
        return list(self.manifest.get("demo_weights") or [])


@dataclass
class ReportData:
    """The results a report shows, with where they came from.

    `scores`: one row per (scale, scene, method, metric, convention) with columns
    scale (int), scene (str, without the `x<scale>/` prefix), method, metric, convention, value, run_id.
    `timings`: every stage_timings row of the profile's runs, in recording order (column `seq`).
    """

    database: Path
    results_dir: Path
    profile: str | None
    scores: pd.DataFrame
    runs: list[RunInfo]                      # contributing runs, oldest first
    all_runs: list[RunInfo]                  # every run of the profile, oldest first
    method_runs: dict[str, str]              # pipeline name -> run_id its scores come from
    timings: pd.DataFrame
    selection: str
    grid: Grid | None = None                 # methods, their composition and order (`reports.grid`)
    metrics: list[MetricInfo] = field(default_factory=list)   # every metric shown, in order
    warnings: list[str] = field(default_factory=list)

    @property
    def images_dir(self) -> Path:
        return self.results_dir / "images"

    @property
    def scales(self) -> list[int]:
        return sorted(int(s) for s in self.scores["scale"].unique())

    @property
    def conventions(self) -> list[str]:
        """The PSNR/SSIM conventions with results (those of the convention-dependent metrics)."""
        dependent = [m.name for m in self.metrics if m.convention_dependent]
        frame = self.scores[self.scores.metric.isin(dependent)]
        return sorted(frame["convention"].unique())

    @property
    def methods(self) -> list[str]:
        """Methods with scores, in Table 1's order."""
        present = set(self.scores["method"].unique())
        return [name for name in self.grid.names if name in present]

    @property
    def table1_metrics(self) -> list[MetricInfo]:
        """The metrics of Table 1 and the significance page: those marked `in_table1` (all of them when
        none is)."""
        return [m for m in self.metrics if m.in_table1] or list(self.metrics)

    def metric(self, name: str) -> MetricInfo:
        return next(m for m in self.metrics if m.name == name)

    @property
    def reference(self) -> str | None:
        """The method every other is compared with on the significance page, if it has results."""
        reference = self.grid.reference
        return reference if reference in self.methods else None

    def scenes(self, scale: int) -> list[str]:
        return sorted(self.scores.loc[self.scores.scale == scale, "scene"].unique())

    def run(self, run_id: str) -> RunInfo:
        return next(run for run in self.all_runs if run.run_id == run_id)

    @property
    def latest_manifest(self) -> dict:
        return self.runs[-1].manifest if self.runs else {}

    @property
    def demo_weights(self) -> list[str]:
        """Components that ran with demo weights in any contributing run."""
        return sorted({name for run in self.runs for name in run.demo_weights})

    def main_scores(self, scale: int, convention: str, metrics: list[MetricInfo] | None = None) -> pd.DataFrame:
        """Per-image scores at `scale`: index (scene, method), one column per metric of `metrics`
        (default: all), the convention-dependent ones in `convention`, the others in "official"
        (NaN where missing)."""
        metrics = self.metrics if metrics is None else metrics
        dependent = [m.name for m in metrics if m.convention_dependent]
        official = [m.name for m in metrics if not m.convention_dependent]
        frame = self.scores[(self.scores.scale == scale) & (
            (self.scores.metric.isin(dependent) & (self.scores.convention == convention)) |
            (self.scores.metric.isin(official) & (self.scores.convention == OFFICIAL)))]
        table = frame.pivot_table(index=["scene", "method"], columns="metric", values="value", aggfunc="first")
        names = [m.name for m in metrics]
        for metric in names:
            if metric not in table:
                table[metric] = float("nan")
        return table[names]


def connect_read_only(database: Path) -> sqlite3.Connection:
    """A read-only connection that leaves no trace.

    Without a `-wal` file (no writer open, or a database copied from elsewhere) every committed row is
    in the main file, which is opened `immutable` so that SQLite creates no `-shm`/`-wal` files next to
    it. With one (a run is writing, or one was killed), a normal read-only connection reads the WAL too.
    """
    uri = database.resolve().as_uri()
    if not Path(f"{database}-wal").exists():
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
    try:
        connection = sqlite3.connect(f"{uri}?mode=ro", uri=True)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)


def _load_runs(connection: sqlite3.Connection) -> list[RunInfo]:
    runs = []
    for run_id, profile, started, finished, status, manifest in connection.execute(
            "SELECT run_id, profile, started, finished, status, manifest FROM runs ORDER BY started, run_id"):
        try:
            parsed = json.loads(manifest) if manifest else {}
        except json.JSONDecodeError:
            parsed = {}
        runs.append(RunInfo(str(run_id), str(profile), float(started), finished, str(status),
                            parsed if isinstance(parsed, dict) else {}))
    return runs


def split_scene(scene: str) -> tuple[int, str] | None:
    """`x2/name` -> (2, "name"); None for a key without a scale prefix."""
    match = _SCENE.match(scene)
    return (int(match.group(1)), match.group(2)) if match else None


def load_report_data(database: str | Path, *, run_id: str | None = None, profile: str | None = None) -> ReportData:
    """Results, runs and stage timings of `database` (see the module docstring for the selection)."""
    database = Path(database)
    if not database.is_file():
        raise ReportError(f"no results database at {database}; run `cfanet-bench run-all` first")
    connection = connect_read_only(database)
    try:
        try:
            every_run = _load_runs(connection)
        except sqlite3.DatabaseError as exc:
            raise ReportError(f"{database} is not a results database ({exc})") from None
        warnings: list[str] = []
        runs = every_run
        if profile is not None:
            runs = [run for run in every_run if run.profile == profile]
            if not runs and every_run:
                found = ", ".join(sorted({run.profile for run in every_run}))
                raise ReportError(f"{database} has no runs of profile {profile!r} (profiles found: {found})")
        if not runs:
            raise ReportError(f"{database} holds no runs yet; run `cfanet-bench run-all` first")
        results = pd.read_sql_query("SELECT rowid AS seq, * FROM results", connection)
        timings = pd.read_sql_query("SELECT rowid AS seq, * FROM stage_timings ORDER BY rowid", connection)
    finally:
        connection.close()

    run_ids = {run.run_id for run in runs}
    results = results[results.run_id.isin(run_ids)]
    timings = timings[timings.run_id.isin(run_ids)].reset_index(drop=True)
    order = {run.run_id: i for i, run in enumerate(runs)}

    if run_id is not None:
        if run_id not in run_ids:
            known = ", ".join(run.run_id for run in runs[-5:])
            raise ReportError(f"no run {run_id!r} in {database} (latest: {known})")
        chosen = results[results.run_id == run_id]
        status = next(run.status for run in runs if run.run_id == run_id)
        if status != "finished":
            warnings.append(f"run {run_id} did not finish (status {status!r}): its results may be incomplete")
        selection = f"run {run_id}"
    else:
        finished = {run.run_id for run in runs if run.status == "finished"}
        candidates = results[results.run_id.isin(finished)]
        if candidates.empty:
            if finished:
                raise ReportError(f"{database}: the finished run(s) scored nothing: the data set's scenes have no HR "
                                  f"references (ground truth or HR exposures) to score against; the images are "
                                  f"under {database.parent / 'images'}")
            raise ReportError(f"{database} has no finished run with results; run `cfanet-bench run-all` first")
        latest = (candidates.assign(order=candidates.run_id.map(order)).groupby("method")["order"].max())
        keep = candidates.run_id.map(order) == candidates.method.map(latest)
        chosen = candidates[keep]
        selection = "for each method, the latest finished run that scored it"
    method_runs = chosen.groupby("method")["run_id"].first().to_dict()
    parsed = chosen.scene.map(split_scene)
    bad = parsed.isna()
    if bad.any():
        warnings.append(f"ignored {int(bad.sum())} result row(s) whose scene has no `x<scale>/` prefix")
    chosen = chosen[~bad]
    parsed = parsed[~bad]
    scores = pd.DataFrame({
        "scale": [p[0] for p in parsed], "scene": [p[1] for p in parsed],
        "method": chosen.method.values, "metric": chosen.metric.values, "convention": chosen.convention.values,
        "value": pd.to_numeric(chosen.value, errors="coerce").values, "run_id": chosen.run_id.values,
    })
    contributing = [run for run in runs if run.run_id in set(method_runs.values())]
    if scores.empty:
        raise ReportError(f"{database}: the selected run(s) have no results")
    manifests = [run.manifest for run in reversed(contributing)]   # the latest run's first
    grid = collect_grid(manifests, scores.method.unique())
    result_metrics = scores.groupby("metric")["convention"].agg(lambda c: set(c)).to_dict()
    metrics = collect_metrics(manifests, result_metrics)
    data = ReportData(database=database, results_dir=database.parent, profile=profile, scores=scores,
                      runs=contributing, all_runs=runs, method_runs=method_runs, timings=timings,
                      selection=selection, grid=grid, metrics=metrics, warnings=warnings)
    data.warnings += consistency_warnings(data)
    return data


def consistency_warnings(data: ReportData) -> list[str]:
    """Differences between contributing runs that make their numbers not directly comparable."""
    warnings = []
    if len(data.runs) > 1:
        ids = ", ".join(run.run_id for run in data.runs)
        warnings.append(f"the results come from {len(data.runs)} runs ({ids}); the manifest page lists "
                        f"which method comes from which run")
        for key, label in (("config_sha256", "configurations"), ("git_commit", "code versions (git commits)")):
            values = {run.manifest.get(key) for run in data.runs}
            if len(values) > 1:
                warnings.append(f"the contributing runs used different {label}")
        weights: dict[str, set] = {}
        for run in data.runs:
            for name, entry in (run.manifest.get("weights") or {}).items():
                if isinstance(entry, dict) and entry.get("sha256"):
                    weights.setdefault(name, set()).add(entry["sha256"])
        changed = sorted(name for name, shas in weights.items() if len(shas) > 1)
        if changed:
            warnings.append("the contributing runs used different weights for " + ", ".join(changed))
    for scale in data.scales:
        frame = data.scores[data.scores.scale == scale]
        per_method = frame.groupby("method")["scene"].nunique()
        if per_method.nunique() > 1:
            warnings.append(f"x{scale}: the methods were scored on different numbers of scenes "
                            f"({per_method.min()} to {per_method.max()}); Table 1 averages each method over "
                            f"its own scenes")
    missing = [name for name in data.grid.names if name not in set(data.scores.method)]
    if missing:
        warnings.append(f"{len(missing)} of the {len(data.grid.names)} methods of the grid have no results: "
                        + ", ".join(missing))
    if data.grid.reference is not None and data.reference is None:
        warnings.append(f"the reference method {data.grid.reference} has no results: the significance page "
                        f"compares no method")
    return warnings
