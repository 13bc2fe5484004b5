"""The authors' official code, for the parity tests (test oracles only: never imported by the package).

The official Python sources live outside the repository, read-only, in `<repo>/../shared/official/<folder>`
(see PROVENANCE.md there); they are never copied into the repository. `official_dir` finds a folder:

1. the test's own environment variable when it is set (an override, e.g. $RCAN_OFFICIAL_CODE; its
   meaning is unchanged: some point at a checkout's root, RCAN's at `RCAN_TestCode/code`);
2. else `official/<folder>` next to $CFANET_SHARED_DATA (which names `<shared>/data`), when that is set
   and exists;
3. else `<repo>/../shared/official/<folder>`.

When the folder is absent the test is skipped, except under CI ($CI set, and not "0"/"false"/"no"), where
it fails: CI must show the parity tests running. A folder that exists but lacks a file the test needs
always fails (a wrong override, or an incomplete export).

`official_imports` imports from such a folder without leaving traces: its directory is on `sys.path` and
bytecode writing is off only inside the block (we run as root in places, where a "read-only" folder
would otherwise get a `__pycache__`); modules loaded from the folder are dropped from `sys.modules`
afterwards and modules of the same top-level names loaded before (another repository's `model`,
`utils`, ...) are hidden during the block and put back after; `stubs` (e.g. a timm stand-in) exist
only for the block; torchvision is blocked (it does not import with the project's CPU torch: an
official import that needs it fails with ImportError instead).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from pathlib import Path
from typing import Iterator, Mapping

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torchvision",)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def default_root() -> Path:
    """`official/` beside the shared data: next to $CFANET_SHARED_DATA if that exists, else
    `<repo>/../shared/official`."""
    default = REPO.parent / "shared" / "official"
    data = os.environ.get("CFANET_SHARED_DATA")
    if data:
        sibling = Path(data).parent / "official"
        if sibling.is_dir():
            return sibling
    return default


def official_dir(variable: str, folder: str, required: tuple[str, ...] = ()) -> Path:
    """The official code's directory: $`variable` if set, else `<official root>/<folder>`.

    Skips the calling test when the directory is absent (fails under CI); fails when it exists but lacks
    one of the `required` files (paths relative to it).
    """
    override = os.environ.get(variable)
    path = Path(override) if override else default_root() / folder
    origin = f"${variable}" if override else f"the default (set ${variable} to override)"
    if not path.is_dir():
        message = f"official code not found at {path}, from {origin}"
        if in_ci():
            pytest.fail(message + "; CI must run the parity tests with the official code", pytrace=False)
        pytest.skip(message)
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        pytest.fail(f"official code at {path} (from {origin}) lacks {', '.join(missing)}", pytrace=False)
    return path


def _top_level_names(root: Path) -> set[str]:
    names = set()
    for entry in root.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
    return names


def _is_from(module: types.ModuleType | None, root: Path) -> bool:
    """Whether `module` was loaded from under `root` (a file of it, or a package directory)."""
    try:
        locations = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or ())]
        return any(isinstance(location, str) and os.path.realpath(location).startswith(f"{root}{os.sep}")
                   for location in locations)
    except Exception:  # an odd module object (lazy loaders and the like): not one of ours
        return False


@contextlib.contextmanager
def official_imports(root: Path, stubs: Mapping[str, types.ModuleType] | None = None) -> Iterator[Path]:
    """`root` importable inside the block only (see the module docstring); yields `root`."""
    root = Path(root).resolve()
    entry = str(root)
    names = _top_level_names(root)
    hidden = {name: sys.modules.pop(name) for name in list(sys.modules)
              if name.split(".")[0] in names and not _is_from(sys.modules[name], root)}
    installed = {name: module for name, module in {**(stubs or {}), **dict.fromkeys(BLOCKED)}.items()
                 if name not in sys.modules}
    sys.modules.update(installed)
    dont_write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    sys.path.insert(0, entry)
    try:
        yield root
    finally:
        sys.dont_write_bytecode = dont_write_bytecode
        if entry in sys.path:
            sys.path.remove(entry)
        for name, module in list(sys.modules.items()):
            if (name in installed and module is installed[name]) or _is_from(module, root):
                del sys.modules[name]
        for name, module in hidden.items():
            sys.modules.setdefault(name, module)


def timm_stub(trunc_normal_, to_2tuple, drop_path) -> dict[str, types.ModuleType]:
    """`timm`, `timm.models`, `timm.models.layers` holding only the three helpers given."""
    timm, models, layers = (types.ModuleType(name) for name in ("timm", "timm.models", "timm.models.layers"))
    layers.trunc_normal_, layers.to_2tuple, layers.DropPath = trunc_normal_, to_2tuple, drop_path
    timm.models, models.layers = models, layers
    return {"timm": timm, "timm.models": models, "timm.models.layers": layers}
