"""Shared helpers for folder-based datasets: image discovery by name and split files."""

from __future__ import annotations

from pathlib import Path

from cfanet.data.scene import DatasetError
from cfanet.images import READABLE_SUFFIXES


def list_folder(folder: Path) -> list[Path]:
    """The entries of `folder`, sorted; an unreadable or missing folder is a `DatasetError` naming it."""
    try:
        return sorted(Path(folder).iterdir())
    except PermissionError:
        raise DatasetError(f"{folder}: folder cannot be read (permission denied)") from None
    except FileNotFoundError:
        raise DatasetError(f"{folder}: folder not found") from None
    except OSError as exc:
        raise DatasetError(f"{folder}: folder cannot be read ({exc.strerror or exc})") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def image_files(folder: Path) -> dict[str, Path]:
    """Images directly in `folder`, keyed by file stem; two files whose stems are equal (ignoring
    case, as `a.png` and `a.jpg`, or `A.png` and `a.png`) are an error naming both."""
    found: dict[str, Path] = {}
    lowered: dict[str, Path] = {}
    for path in list_folder(folder):
        if path.suffix.lower() in READABLE_SUFFIXES and not path.name.startswith(".") and _is_file(path):
            other = lowered.get(path.stem.lower())
            if other is not None:
                raise DatasetError(f"{folder}: two images with the scene name {path.stem!r}: {other.name}, "
                                   f"{path.name} (keep one)")
            found[path.stem] = lowered[path.stem.lower()] = path
    return found


def find_child(folder: Path, name: str) -> Path | None:
    """The child of `folder` called `name`, matched without case (SICE's archives vary)."""
    exact = folder / name
    try:
        if exact.exists():
            return exact
    except OSError:
        pass
    lowered = name.lower()
    return next((p for p in list_folder(folder) if p.name.lower() == lowered), None)


def find_image(folder: Path, stem: str) -> Path | None:
    """The image in `folder` whose stem is `stem` (any readable suffix, case-insensitive)."""
    lowered = stem.lower()
    return next((p for s, p in image_files(folder).items() if s.lower() == lowered), None)


def read_split(path: Path, available: list[str]) -> list[str]:
    """Scene names listed in a split file (one per line, # comments), checked against `available`."""
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    names = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in set(available)]
    if unknown:
        raise DatasetError(f"{path}: {len(unknown)} scene(s) not in the dataset: {', '.join(unknown[:10])}")
    if not names:
        raise DatasetError(f"{path}: split file lists no scenes")
    return names
