"""Code identities for cache keys (pipelines/codehash.py): import closures found statically, and
digests that change exactly when code a method runs changes (issue 14, part 4)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines import codehash
from pipelines.codehash import (
    PROTOCOL_MODULES,
    closure_digest,
    method_code_digest,
    module_closure,
    module_file,
    protocol_modules,
)
from pipelines.registry import methods

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("cfanet", "baselines", "pipelines", "reports")


def _method_modules() -> dict[str, str]:
    """Method name -> the module implementing it, from the registry as it is."""
    modules = {name: entry.module for name, entry in methods().specs.items()}
    return {name: module for name, module in modules.items() if module.partition(".")[0] in PROJECT_PACKAGES}


def _module_of(name: str) -> str:
    return _method_modules()[name]


# -- closures of the real tree --------------------------------------------------------------------


def test_closures_follow_imports():
    assert "cfanet.feedback" in module_closure(_module_of("CF-Net"))
    assert "cfanet.feedback" in module_closure(_module_of("CFANet"))
    assert "cfanet.feedback" not in module_closure(_module_of("MGFF"))
    mgff = module_closure(_module_of("MGFF"))
    # the module itself, the packages importing it executes, and what it imports
    assert {"baselines", "baselines.mef", "baselines.mef.mgff", "baselines.mef.base", "cfanet",
            "cfanet.images"} <= set(mgff)
    assert mgff == sorted(mgff)
    for module in _method_modules().values():
        assert module in module_closure(module)
        assert all(name.partition(".")[0] in PROJECT_PACKAGES for name in module_closure(module))


def test_no_closure_reaches_reports():
    for module in [*_method_modules().values(), *protocol_modules()]:
        reached = [name for name in module_closure(module) if name.split(".")[0] == "reports"]
        assert not reached, f"{module} reaches {reached}"


def test_protocol_modules_are_the_existing_shared_ones():
    present = protocol_modules()
    assert set(present) <= set(PROTOCOL_MODULES)
    for name in ("cfanet.tiling", "cfanet.ensemble", "cfanet.color", "cfanet.resize", "cfanet.images",
                 "pipelines.compute", "baselines.sr.base"):
        assert name in present
    assert all(module_file(name).is_file() for name in present)
    for name in set(PROTOCOL_MODULES) - set(present):
        with pytest.raises(ModuleNotFoundError):
            module_file(name)


def test_compute_contributes_its_own_source_only():
    # pipelines.compute imports the configuration loader, which computes no pixel (the settings that
    # can change one are in the stage key as values): its closure is not hashed
    assert "pipelines.config" in module_closure("pipelines.compute")
    own = closure_digest(["pipelines.compute"])
    assert own == closure_digest(["pipelines", "pipelines.compute"])
    assert own != closure_digest(["pipelines.compute", "pipelines.config"])


def test_digest_is_order_and_duplicate_free():
    modules = list(_method_modules().values())
    assert closure_digest(modules) == closure_digest(reversed(modules + modules[:2]))
    assert len(method_code_digest(modules[0])) == codehash.DIGEST_CHARS


def test_unknown_module_is_an_error():
    with pytest.raises(ModuleNotFoundError):
        module_closure("cfanet.no_such_module_here")


# -- static analysis on a small plugin tree ---------------------------------------------------------

PLUGIN_FILES = {
    "chx_plugin/__init__.py": "",
    "chx_plugin/method.py": """
        from __future__ import annotations
        import os
        from typing import TYPE_CHECKING

        from . import helpers                      # relative: a submodule
        from .sub import deep                       # a sub-package's module
        from cfanet.tiling import tiled_apply       # the project's shared code
        import chx_neighbour                        # a package next to this one (same source tree)

        if TYPE_CHECKING:
            from chx_plugin import typing_only      # counted (conservative)

        def run():
            from chx_plugin.lazy import value       # a lazy import inside a function
            import importlib
            importlib.import_module("chx_plugin.dynamic")
            return value
        """,
    "chx_plugin/helpers.py": "import numpy\n",
    "chx_plugin/sub/__init__.py": "from ..helpers import *\n",
    "chx_plugin/sub/deep.py": "from ...chx_plugin import helpers\n",  # beyond the top: ignored
    "chx_plugin/lazy.py": "value = 1\n",
    "chx_plugin/dynamic.py": "",
    "chx_plugin/typing_only.py": "",
    "chx_plugin/unused.py": "import reports.render\n",
    "chx_neighbour/__init__.py": "",
}


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_plugin_closure_is_static_and_complete(tmp_path, monkeypatch):
    _write_tree(tmp_path, PLUGIN_FILES)
    monkeypatch.syspath_prepend(str(tmp_path))
    closure = module_closure("chx_plugin.method")
    assert closure == sorted([
        "cfanet", "cfanet.tiling", "chx_neighbour",
        "chx_plugin", "chx_plugin.dynamic", "chx_plugin.helpers", "chx_plugin.lazy", "chx_plugin.method",
        "chx_plugin.sub", "chx_plugin.sub.deep", "chx_plugin.typing_only",
    ])
    assert "chx_plugin.method" not in sys.modules  # found without importing
    before = closure_digest(["chx_plugin.method"])
    (tmp_path / "chx_plugin/unused.py").write_text("# outside the closure\n")
    assert closure_digest(["chx_plugin.method"]) == before
    (tmp_path / "chx_plugin/lazy.py").write_text("value = 2\n")
    assert closure_digest(["chx_plugin.method"]) != before


# -- editing a copy of the project: which methods' keys change ------------------------------------

DIGEST_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import pipelines.codehash as codehash
digests = {module: codehash.method_code_digest(module) for module in sys.argv[1:]}
seconds = time.perf_counter() - start
watched = {"cfanet", "baselines", "pipelines", "reports", "torch", "numpy"}
imported = sorted(m for m in sys.modules if m.split(".")[0] in watched)
print(json.dumps({"digests": digests, "seconds": seconds, "imported": imported,
                  "codehash": codehash.__file__, "feedback": str(codehash.module_file("cfanet.feedback"))}))
"""


def _copy_project(target: Path) -> Path:
    for package in PROJECT_PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _digests(copy: Path, modules: list[str]) -> dict:
    """Method digests computed by a fresh interpreter that imports the project from `copy`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", DIGEST_SCRIPT, *modules], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Path(result["codehash"]).resolve().is_relative_to(copy.resolve())  # the copy, not the checkout
    assert Path(result["feedback"]).resolve().is_relative_to(copy.resolve())
    return result


def _edited(copy: Path, relatives: list[str], modules: list[str]) -> dict[str, str]:
    """The digests with a comment appended to each of `relatives`, the files restored after."""
    originals = {relative: (copy / relative).read_bytes() for relative in relatives}
    try:
        for relative, source in originals.items():
            (copy / relative).write_bytes(source + b"\n# edited by tests/test_codehash.py\n")
        return _digests(copy, modules)["digests"]
    finally:
        for relative, source in originals.items():
            (copy / relative).write_bytes(source)


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {module for module in before if before[module] != after[module]}


def _stage_keys(digests: dict[str, str]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Stage key -> (method, input keys) of the paper grid on one scene, the methods' code
    identities being `digests` (by module), everything else equal."""
    from pipelines.catalog import paper_grid
    from pipelines.graph import build_scene_graph

    table = methods()
    grid = paper_grid(table)
    identities = {name: {"config": {"scale": 2}, "weights_sha256": name, "code": digests[table.specs[name].module]}
                  for name in grid.sr + grid.mef + grid.joint}
    graph = build_scene_graph("scene", "over", "under", grid.pipelines(), identities)
    return {key: (stage.method, stage.inputs) for key, stage in graph.stages.items()}


def _invalidated(before: dict[str, str], after: dict[str, str]) -> set[tuple[str, tuple[str, ...]]]:
    """The stages (method, method of each input stage) whose key an edit changed."""
    old, new = _stage_keys(before), _stage_keys(after)

    def described(stages, key):
        method, inputs = stages[key]
        return method, tuple(stages[k][0] if k in stages else k for k in inputs)
    return {described(old, key) for key in set(old) - set(new)}


def _consumes(stage: tuple[str, tuple[str, ...]], method: str) -> bool:
    return stage[0] == method or method in stage[1]


def test_edits_change_exactly_the_methods_that_run_the_edited_code(tmp_path):
    methods = _method_modules()
    modules = list(methods.values())
    assert len(modules) >= 2
    copy = _copy_project(tmp_path / "project")

    base = _digests(copy, modules)
    before = base["digests"]
    # static and cheap: nothing of the project (beyond the hashing module) nor torch/numpy imported
    assert base["imported"] == ["pipelines", "pipelines.codehash"], base["imported"]
    print(f"\nall {len(modules)} method digests in a fresh process: {base['seconds'] * 1000:.0f} ms")
    assert base["seconds"] < 10

    # names and bytes, not paths: the same code elsewhere has the same keys
    moved = shutil.copytree(copy, tmp_path / "elsewhere")
    assert _digests(moved, modules)["digests"] == before

    everything = _invalidated(before, {module: "edited" for module in before})
    feedback_digests = _edited(copy, ["cfanet/feedback.py"], modules)
    assert _changed(before, feedback_digests) == {methods["CF-Net"], methods["CFANet"]}
    # in the stage graph: exactly the CF-Net and CFANet stages
    assert _invalidated(before, feedback_digests) == {("CF-Net", ("over", "under")), ("CFANet", ("over", "under"))}

    mgff_digests = _edited(copy, ["baselines/mef/mgff.py"], modules)
    assert _changed(before, mgff_digests) == {methods["MGFF"]}
    # MGFF's stages and the stages that consume them (MGFF+SR upscaling MGFF's fused pair), nothing else
    invalidated = _invalidated(before, mgff_digests)
    assert invalidated == {stage for stage in everything if _consumes(stage, "MGFF")}
    assert any(stage[0] != "MGFF" for stage in invalidated)  # downstream SR stages included

    # reports/ and the parts of pipelines/ that orchestrate rather than compute
    unrelated = sorted(p.relative_to(copy).as_posix() for p in (copy / "reports").rglob("*.py"))
    unrelated += ["pipelines/runner.py", "pipelines/cli.py", "pipelines/registry.py", "pipelines/config.py"]
    unrelated_digests = _edited(copy, unrelated, modules)
    assert not _changed(before, unrelated_digests) and not _invalidated(before, unrelated_digests)

    assert _changed(before, _edited(copy, ["cfanet/tiling.py"], modules)) == set(modules)


def test_installed_plugin_is_its_own_root(tmp_path, monkeypatch):
    # a plugin installed into a site-packages folder: its own package and the project's modules it
    # imports are hashed, its neighbours there (third-party libraries) are not
    site_dir = tmp_path / "lib" / "site-packages"
    _write_tree(site_dir, {
        "chy_plugin/__init__.py": "from chy_plugin.model import Model\n",
        "chy_plugin/model.py": "import chy_thirdparty\nfrom baselines.mef.base import check_pair\nclass Model: ...\n",
        "chy_thirdparty/__init__.py": "",
    })
    monkeypatch.syspath_prepend(str(site_dir))
    assert module_closure("chy_plugin.model") == [
        "baselines", "baselines.mef", "baselines.mef.base", "chy_plugin", "chy_plugin.model"]
