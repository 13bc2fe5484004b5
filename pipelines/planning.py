"""Planning a run: the scenes checked up front, every scene's stage graph, and the missing stages
and metric values as batches for an executor.

Nothing here computes an image. `scan_scenes` loads each scene once so that a bad file fails before
any work; `plan_stages` builds the stage graphs (a stage shared by several scenes with identical
inputs is planned once); `stage_batches` groups the stages still to compute by level (stages on the
scenes' images, then stages on their outputs), method, scale and input size; `score_batches`
groups the final images still to score by scale and size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm

from cfanet.data.scene import DatasetError, Scene
from pipelines.cache import image_key
from pipelines.catalog import PipelineSpec
from pipelines.executors import StageBatch
from pipelines.graph import SceneGraph, Stage, build_scene_graph
from pipelines.score_tasks import DEFAULT_SCORE_BATCH, ScoreBatch, ScoreItem

SHOWN_NOTES = 5  # modcrop notes printed before the rest is summarised in one line


@dataclass(frozen=True)
class ScannedScene:
    """A scene as checked before the run: its input keys, LR size and files."""

    scale: int
    name: str
    over_key: str
    under_key: str
    lr_size: tuple[int, int]
    files: dict
    hr_size: tuple[int, int] | None = None


@dataclass
class PlannedScene:
    """A scene's stage graph and the stages this run needs from it."""

    scanned: ScannedScene
    graph: SceneGraph
    stages: list[Stage]


def scan_scenes(datasets: dict, modcropped: dict, log: Callable[[str], None] = print,
                show_progress: bool = True) -> list[ScannedScene]:
    """Load every scene once before any work: unreadable, corrupt or mismatched files fail here,
    naming the file, before weights are trained or a stage runs. Images are not kept (a scene is
    loaded again when its turn comes). Scenes whose HR images were cropped to a multiple of the
    scale are added to `modcropped` ("x<s>/<name>" -> (size before, size after)) and said."""
    scanned = []
    for scale, dataset in datasets.items():
        for name in tqdm(dataset.names(), desc=f"checking scenes x{scale}", disable=not show_progress, leave=False):
            scene = dataset.load(name)
            reference = next((x for x in (scene.gt, scene.gt_over) if x is not None), None)
            scanned.append(ScannedScene(scale, name, image_key(scene.over), image_key(scene.under),
                                        tuple(scene.over.shape[-2:]), dict(scene.info.get("files") or {}),
                                        None if reference is None else tuple(reference.shape[-2:])))
            before, after = scene.info.get("modcropped_from"), scene.info.get("hr_size")
            if before is not None and after is not None and tuple(before) != tuple(after):
                modcropped[f"x{scale}/{name}"] = (tuple(before), tuple(after))
                if len(modcropped) <= SHOWN_NOTES:
                    log(f"note: scene {name!r}: HR {before[0]}x{before[1]} cropped to {after[0]}x{after[1]} "
                        f"(a multiple of the scale {scale}, as CF-Net's data preparation does)")
    if len(modcropped) > SHOWN_NOTES:
        log(f"note: ... {len(modcropped) - SHOWN_NOTES} more scene(s) cropped to a multiple of the scale "
            f"(all listed in the run manifest under 'modcropped')")
    return scanned


SMALL_SIDE = 64  # scenes with a side below this are checked against every metric before any work


def check_scene_sizes(scanned: list[ScannedScene], metrics_config, specs: dict) -> None:
    """Refuse, before any work, scenes too small for a method of the run (its `min_input_size`) or
    for a metric of the profile (SSIM's 11-pixel window after the `sr` convention's border crop,
    MEF-SSIM's scales...): the error names the scene's files and what needs more pixels. Metrics
    are probed on stand-in images of the scene's size, only for scenes with a side below 64 px."""
    import torch

    from cfanet.metrics.registry import References
    from pipelines.scoring import conventions_of, metrics_of

    probed: dict[tuple, str | None] = {}
    for entry in scanned:
        where = f"scene {entry.name!r} ({', '.join(str(v) for v in entry.files.values()) or 'generated'})"
        for spec in specs.values():
            if min(entry.lr_size) < spec.min_input_size:
                raise DatasetError(f"{where}: its {entry.lr_size[0]}x{entry.lr_size[1]} LR images are smaller than "
                                   f"{spec.name}'s minimum of {spec.min_input_size} pixels per side")
        if entry.hr_size is None or min(entry.hr_size) >= SMALL_SIDE:
            continue
        key = (entry.hr_size, entry.scale)
        if key not in probed:
            probed[key] = None
            image = torch.full((1, 3, *entry.hr_size), 0.5)
            refs = References(gt=image, gt_over=image, gt_under=image)
            for metric in metrics_of(metrics_config):
                for convention in metric.conventions(conventions_of(metrics_config)):
                    try:
                        metric.compute_details(image, refs, convention, entry.scale)
                    except ValueError as exc:
                        probed[key] = f"{metric.label} ({convention}) cannot score it: {exc}"
                        break
                if probed[key]:
                    break
        if probed[key]:
            raise DatasetError(f"{where}: its {entry.hr_size[0]}x{entry.hr_size[1]} HR images are too small: "
                               f"{probed[key]}")


def load_scanned(datasets: dict, scanned: ScannedScene) -> Scene:
    """A scene, checked to be the one scanned before the run started."""
    scene = datasets[scanned.scale].load(scanned.name)
    if (image_key(scene.over), image_key(scene.under)) != (scanned.over_key, scanned.under_key):
        files = ", ".join(str(v) for v in scanned.files.values())
        raise DatasetError(f"scene {scanned.name!r}: input files changed while the run was going "
                           f"({files or 'generated scene'}); run again")
    return scene


def components_of(specs: list[PipelineSpec]) -> list[str]:
    """The methods the pipelines chain, each once, in order of first use."""
    names: list[str] = []
    for spec in specs:
        names += [name for name in spec.components if name not in names]
    return names


def plan_stages(specs: list[PipelineSpec], scanned: list[ScannedScene],
                identities: dict[tuple[str, int], dict]) -> list[PlannedScene]:
    """Every scene's stage graph and the stages the pipelines need from it; a stage shared with an
    earlier scene (identical inputs) is planned once. `identities[(method, scale)]` identifies each
    method's computation in the cache."""
    methods = components_of(specs)
    plan, seen = [], set()
    for entry in scanned:
        graph = build_scene_graph(entry.name, entry.over_key, entry.under_key, specs,
                                  {n: identities[(n, entry.scale)] for n in methods})
        stages = []
        for stage in graph.stages_of([spec.name for spec in specs]):
            if stage.key not in seen:
                seen.add(stage.key)
                stages.append(stage)
        plan.append(PlannedScene(entry, graph, stages))
    return plan


def stage_batches(plan: list[PlannedScene], todo: set[str], batch_size: int) -> list[list[StageBatch]]:
    """The stages in `todo` as batches, level by level: level 0 reads the scenes' images, level 1
    reads level-0 outputs. A batch holds up to `batch_size` stages of one method and scale on scenes
    whose inputs have equal sizes, in scene order."""
    levels: list[dict[tuple, list[Stage]]] = [{}, {}]
    for planned in plan:
        raw = {planned.scanned.over_key, planned.scanned.under_key}
        for stage in planned.stages:
            if stage.key not in todo:
                continue
            level = 0 if set(stage.inputs) <= raw else 1
            group = (planned.scanned.scale, stage.method, stage.kind, planned.scanned.lr_size,
                     tuple(k in raw for k in stage.inputs))
            levels[level].setdefault(group, []).append(stage)
    return [[StageBatch(method_name, kind, scale, tuple(stages[i:i + batch_size]))
             for (scale, method_name, kind, *_), stages in groups.items() for i in range(0, len(stages), batch_size)]
            for groups in levels]


def score_batch_size(runtime) -> int:
    """Images per score batch: `runtime.batch_size`, at least `DEFAULT_SCORE_BATCH` (scoring needs
    far less memory than a model, and a batched metric gains from more images per call)."""
    return max(runtime.batch_size, DEFAULT_SCORE_BATCH)


class ScoreBatcher:
    """Groups the final images to score into score batches as they are planned: up to `batch_size`
    images of one scale and HR size each, in the order they are added (scene by scene, so a batch
    needs the references of few scenes)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._open: dict[tuple, list[ScoreItem]] = {}  # (scale, size) -> the images of a batch being filled

    def add(self, item: ScoreItem) -> ScoreBatch | None:
        """Add one image; the batch it completes, if it completes one."""
        group = (item.scale, tuple(item.size))
        self._open.setdefault(group, []).append(item)
        if len(self._open[group]) < self.batch_size:
            return None
        return ScoreBatch(item.scale, group[1], tuple(self._open.pop(group)))

    def flush(self) -> list[ScoreBatch]:
        """The batches still being filled (fewer images than `batch_size`), which are then empty."""
        batches = [ScoreBatch(scale, size, tuple(items)) for (scale, size), items in self._open.items()]
        self._open.clear()
        return batches


def score_batches(items: list[ScoreItem], batch_size: int) -> list[ScoreBatch]:
    """The final images to score as batches (`ScoreBatcher`): full batches as they fill up, then
    the partial ones."""
    batcher = ScoreBatcher(batch_size)
    batches = [batch for batch in map(batcher.add, items) if batch is not None]
    return batches + batcher.flush()
