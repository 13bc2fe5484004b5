"""Code identities for cache keys: a digest of exactly the project source a method's output depends on.

A stage's cached output is valid while none of the code that computed it has changed. That code is

* the method's own module and every in-project module it imports, transitively (its *import
  closure*), including the package `__init__.py` files that importing a submodule executes, and
  imports written inside functions (the project imports lazily);
* the shared protocol code every stage goes through (`PROTOCOL_MODULES`: tiling, ensembles, colour,
  resize, image I/O and 8-bit quantisation, the stage computation, the adapter bases).

The closure is found statically, by parsing source with `ast`: nothing is imported (apart from the
finder locating top-level packages, which imports nothing), so computing a digest is cheap and free
of side effects, and a broken optional dependency of one method cannot break another's key.

"In-project" means the project's own top-level packages: `CORE_PACKAGES` and every other top-level
package that lives in the same source root as this file (a source checkout or an editable install;
when the project is installed into site-packages only `CORE_PACKAGES` count, not its neighbours
there). A method from a plugin package installed elsewhere is its own root: its closure covers its
own top-level package (and, when that package lives in a source tree, the packages next to it) plus
whatever project modules it imports. Third-party libraries (torch, numpy, ...) are not hashed: their
versions belong in an environment record, not in a source digest.

Digests cover module *names* and source *bytes*, not paths, so the same code gives the same key in
any checkout. Files outside the closure never enter a digest: editing `reports/` changes no
method's key.

Static analysis sees `import a.b`, `from a import b` (b a submodule or a name), relative imports,
and `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name. It is conservative
about conditions: an import under `if TYPE_CHECKING:` or in a `try:` counts. It cannot see a module
named by a computed string; the registry's discovery of methods is such a dynamic import; `pipelines.compute` contributes its
own source only (see `OWN_SOURCE_ONLY`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import site
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "CORE_PACKAGES",
    "DIGEST_CHARS",
    "OWN_SOURCE_ONLY",
    "PROTOCOL_MODULES",
    "closure_digest",
    "method_code_digest",
    "module_closure",
    "module_file",
    "protocol_modules",
]

# The project's own top-level packages (pyproject's [tool.setuptools.packages.find] include).
CORE_PACKAGES: tuple[str, ...] = ("cfanet", "baselines", "pipelines", "reports")

# Shared code every stage goes through, whichever method it runs. Names that do not exist in this
# tree are skipped (the adapter base may be `cfanet.adapter` or `cfanet.methods`).
PROTOCOL_MODULES: tuple[str, ...] = (
    "cfanet.tiling",        # tiled inference
    "cfanet.ensemble",      # self-ensembles
    "cfanet.color",         # colour conversions
    "cfanet.resize",        # MATLAB-compatible resizing
    "cfanet.images",        # image I/O and 8-bit quantisation
    "pipelines.compute",    # the stage computation (own source only, see OWN_SOURCE_ONLY)
    "baselines.sr.base",    # adapter base of the SR models
    "cfanet.adapter",       # the method adapter base, where it exists
    "cfanet.methods",       # the method descriptors / registry decorator, where it exists
)

# Protocol modules hashed without their import closure. `pipelines.compute` imports the
# configuration loader (`pipelines.config`), which parses settings but computes no pixel: the
# runtime settings that can change an output (tile size and overlap, precision) enter the stage key
# as values. Hashing the loader would invalidate every cached stage whenever a configuration key is
# added. Its own source is what carries the protocol (batching, channels-last, tile retries); the
# method's code is covered by the method's closure.
OWN_SOURCE_ONLY: frozenset[str] = frozenset({"pipelines.compute"})

# Length of the hex digests returned (128 bits).
DIGEST_CHARS = 32


# -- locating modules without importing them -----------------------------------------------------


@functools.lru_cache(maxsize=None)
def _home_root() -> Path:
    """The source root this project's packages live in (the folder holding `pipelines/`)."""
    return Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def _site_dirs() -> frozenset[Path]:
    dirs = set()
    for getter in (site.getsitepackages, site.getusersitepackages):
        try:
            found = getter()
        except Exception:  # pragma: no cover - unusual interpreters (embedded, old virtualenv)
            continue
        dirs.update([found] if isinstance(found, str) else found)
    for key in ("purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(path)
    return frozenset(Path(d).resolve() for d in dirs)


def _is_site_dir(path: Path) -> bool:
    return path in _site_dirs() or path.name in {"site-packages", "dist-packages"}


@functools.lru_cache(maxsize=None)
def _top_level(name: str) -> tuple[Path | None, tuple[Path, ...], Path | None]:
    """(source file, package search folders, root folder) of the top-level module `name`, as the
    import system would find it (sys.path, editable-install finders). Nothing is imported."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None, (), None
    if spec is None:
        return None, (), None
    locations = tuple(Path(p).resolve() for p in (spec.submodule_search_locations or ()))
    origin = Path(spec.origin).resolve() if spec.origin and spec.has_location else None
    if origin is not None and not origin.is_file():
        origin = None
    if locations:
        root = locations[0].parent
    elif origin is not None:
        root = origin.parent
    else:
        root = None
    if origin is not None and origin.suffix != ".py":
        origin = None  # compiled or frozen: no source to parse (see module_file's fallback)
    return origin, locations, root


@functools.lru_cache(maxsize=None)
def _resolve(name: str) -> tuple[Path | None, tuple[Path, ...]] | None:
    """(source file or None for a namespace package, search folders) of the module `name`, by
    path resolution below its top-level package; None where no such module exists."""
    top, *rest = name.split(".")
    origin, locations, root = _top_level(top)
    if root is None:
        return None
    if not rest:
        return origin, locations
    parent = _resolve(name.rpartition(".")[0])
    if parent is None or not parent[1]:
        return None
    part = rest[-1]
    portions = []
    for folder in parent[1]:
        if (folder / part / "__init__.py").is_file():
            return (folder / part / "__init__.py"), (folder / part,)
        if (folder / f"{part}.py").is_file():
            return (folder / f"{part}.py"), ()
        if (folder / part).is_dir():
            portions.append(folder / part)
    return (None, tuple(portions)) if portions else None


def module_file(name: str) -> Path:
    """The source file of module `name` (a package's `__init__.py`), found without importing it.

    Falls back to `importlib.util.find_spec` (which imports the parent packages) for modules that
    path resolution cannot place. Raises ModuleNotFoundError when no source file exists."""
    resolved = _resolve(name)
    if resolved is not None and resolved[0] is not None:
        return resolved[0]
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name) from exc
    if spec is not None and spec.origin and spec.has_location and Path(spec.origin).is_file():
        return Path(spec.origin).resolve()
    raise ModuleNotFoundError(f"no source file for module {name!r}", name=name)


# -- reading imports ------------------------------------------------------------------------------


def _absolute(module: str | None, level: int, current: str, is_package: bool) -> str | None:
    """The absolute name of `from <level dots><module> import ...` written in module `current`."""
    if level == 0:
        return module
    package = current if is_package else current.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None  # beyond the top-level package: an ImportError at run time
    base = parts[: len(parts) - (level - 1)]
    if module:
        base.append(module)
    return ".".join(base) if base else None


_DYNAMIC_IMPORTERS = ("import_module", "__import__")
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.Module):
    """Every statement of a module, those nested in functions, classes and blocks included
    (walking statements only is several times cheaper than `ast.walk` over every expression)."""
    stack: list = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        for field in _BLOCK_FIELDS:
            stack.extend(getattr(node, field, ()))


def _dynamic_target(node: ast.Call) -> str | None:
    """The module named by `importlib.import_module("...")` / `__import__("...")` with a literal."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in _DYNAMIC_IMPORTERS or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    target = first.value
    if not target.startswith("."):
        return target
    package = None
    if called == "import_module":
        if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            package = node.args[1].value
        for keyword in node.keywords:
            if keyword.arg == "package" and isinstance(keyword.value, ast.Constant):
                package = keyword.value.value
    if not isinstance(package, str):
        return None
    level = len(target) - len(target.lstrip("."))
    return _absolute(target[level:] or None, level, package, True)


@functools.lru_cache(maxsize=None)
def _imported_names(name: str) -> tuple[str, ...]:
    """Every module name the source of module `name` may import (candidates: `from a import b`
    gives both `a` and `a.b`; the caller keeps those that are modules)."""
    path = module_file(name)
    if path.suffix != ".py":
        return ()  # compiled: hashed as bytes, its imports cannot be read
    source = path.read_bytes()
    tree = ast.parse(source, filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[str] = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name, is_package)
            if base is None:
                continue
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    if any(word.encode() in source for word in _DYNAMIC_IMPORTERS):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (target := _dynamic_target(node)) is not None:
                found.append(target)
    return tuple(dict.fromkeys(found))


# -- the closure ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _in_scope(top: str, start_top: str) -> bool:
    """Whether top-level package `top` is hashed for a closure that starts in `start_top`."""
    if top == start_top or top in CORE_PACKAGES and _top_level(top)[2] == _home_root():
        return True
    root = _top_level(top)[2]
    if root is None or _is_site_dir(root):
        return False
    return root in {_home_root(), _top_level(start_top)[2]}


def _with_parents(name: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`, `a.b.c`]: importing a submodule executes its packages' __init__."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _has_source(name: str) -> bool:
    """Whether path resolution places module `name` in a source file (False for namespace
    packages, which have no code of their own, and for names that are not modules)."""
    resolved = _resolve(name)
    return resolved is not None and resolved[0] is not None


@functools.lru_cache(maxsize=None)
def _closure(name: str) -> tuple[str, ...]:
    module_file(name)  # raises for an unknown module rather than hashing nothing
    start_top = name.partition(".")[0]
    seen: set[str] = set()
    pending = _with_parents(name)
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if current != name and not _has_source(current):
            continue
        for imported in _imported_names(current):
            for candidate in _with_parents(imported):
                if candidate in seen or not _in_scope(candidate.partition(".")[0], start_top):
                    continue
                if _resolve(candidate) is not None:
                    pending.append(candidate)
    return tuple(sorted(m for m in seen if m == name or _has_source(m)))


def module_closure(module_name: str) -> list[str]:
    """The in-project modules (sorted names) that importing `module_name` may execute: the module
    itself, its packages' `__init__` modules and every in-project module it imports, transitively.
    Found statically and cached per process. Raises ModuleNotFoundError for an unknown module."""
    return list(_closure(module_name))


# -- digests --------------------------------------------------------------------------------------


def closure_digest(module_names: Iterable[str]) -> str:
    """SHA-256 (first DIGEST_CHARS hex digits) over the names and source bytes of the union of the
    closures of `module_names`, sorted by name. Modules in OWN_SOURCE_ONLY given here directly
    contribute their own source (and their packages' __init__) but not their closure."""
    members: set[str] = set()
    for name in module_names:
        if name in OWN_SOURCE_ONLY:
            module_file(name)
            members.update(m for m in _with_parents(name) if m == name or _has_source(m))
        else:
            members.update(_closure(name))
    digest = hashlib.sha256()
    for name in sorted(members):
        source = module_file(name).read_bytes()
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(4, "big") + encoded + len(source).to_bytes(8, "big") + source)
    return digest.hexdigest()[:DIGEST_CHARS]


def protocol_modules() -> tuple[str, ...]:
    """The entries of PROTOCOL_MODULES that exist in this tree."""
    return tuple(name for name in PROTOCOL_MODULES if _has_source(name))


def method_code_digest(module_name: str) -> str:
    """The code identity of a method implemented in `module_name`: the digest of its closure and
    of the shared protocol code (`protocol_modules()`)."""
    return closure_digest((module_name, *protocol_modules()))


if __name__ == "__main__":  # python -m pipelines.codehash MODULE...: closures and digests
    for _name in sys.argv[1:]:
        print(_name, method_code_digest(_name), " ".join(module_closure(_name)))
