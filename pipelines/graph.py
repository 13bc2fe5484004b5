"""The stage graph of the compared methods on one scene.

SR+MEF for SR model S and MEF method M is `M(S(over), S(under))`; MEF+SR is `S(M(over, under))`.
Stages are shared: each SR model upscales each LR exposure once and feeds every MEF method; each
MEF method fuses the LR pair once and feeds every SR model. With s SR models, m MEF methods and j
joint methods that is 2s + sm SR runs, m + sm MEF runs and j joint runs per scene (46 for the
paper's 4 x 4 + 2), instead of 3sm + sm + j without sharing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.catalog import PipelineSpec
from pipelines.cache import stage_key


@dataclass(frozen=True)
class Stage:
    """One method applied to inputs identified by key. `inputs` are stage keys or image keys."""

    key: str
    method: str
    kind: str
    inputs: tuple[str, ...]
    scene: str


@dataclass
class SceneGraph:
    """The stages of one scene in execution order, and the final stage of every pipeline."""

    scene: str
    stages: dict[str, Stage] = field(default_factory=dict)
    finals: dict[str, str] = field(default_factory=dict)

    def add(self, stage: Stage) -> str:
        self.stages.setdefault(stage.key, stage)
        return stage.key

    def stages_of(self, pipelines: list[str]) -> list[Stage]:
        """The stages the named pipelines need (upstream included), in execution order."""
        needed: set[str] = set()
        todo = [self.finals[name] for name in pipelines]
        while todo:
            key = todo.pop()
            if key in needed or key not in self.stages:
                continue
            needed.add(key)
            todo.extend(self.stages[key].inputs)
        return [stage for key, stage in self.stages.items() if key in needed]

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for stage in self.stages.values():
            result[stage.kind] = result.get(stage.kind, 0) + 1
        return result


def build_scene_graph(scene: str, over_key: str, under_key: str, specs: list[PipelineSpec],
                      identities: dict[str, dict]) -> SceneGraph:
    """Stages for `specs` on one scene. `identities[method]` is what identifies a method's
    computation in the cache: `config` (configuration, scale, runtime options), `weights_sha256`
    and `code` (the digest of the code that computes it)."""
    graph = SceneGraph(scene)

    def stage(method: str, kind: str, inputs: tuple[str, ...]) -> str:
        ident = identities[method]
        key = stage_key(method, ident.get("config", {}), ident.get("weights_sha256"), list(inputs), ident.get("code", ""))
        return graph.add(Stage(key, method, kind, inputs, scene))

    for spec in specs:
        if spec.order == "SR+MEF":
            up_over = stage(spec.sr, "sr", (over_key,))
            up_under = stage(spec.sr, "sr", (under_key,))
            graph.finals[spec.name] = stage(spec.mef, "mef", (up_over, up_under))
        elif spec.order == "MEF+SR":
            fused = stage(spec.mef, "mef", (over_key, under_key))
            graph.finals[spec.name] = stage(spec.sr, "sr", (fused,))
        else:
            graph.finals[spec.name] = stage(spec.joint, "joint", (over_key, under_key))
    return graph
