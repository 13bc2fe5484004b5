"""Shared helpers for folder-based datasets: image discovery by name and split files."""

from __future__ import annotations

from pathlib import Path

from cfanet.data.scene import DatasetError
from cfanet.images import READABLE_SUFFIXES


def image_files(folder: Path) -> dict[str, Path]:
    """Images directly in `folder`, keyed by file stem; two files with one stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in READABLE_SUFFIXES and not path.name.startswith("."):
            if path.stem in found:
                raise DatasetError(f"{folder}: two images named {path.stem!r}: {found[path.stem].name}, {path.name}")
            found[path.stem] = path
    return found


def find_child(folder: Path, name: str) -> Path | None:
    """The child of `folder` called `name`, matched without case (SICE's archives vary)."""
    exact = folder / name
    if exact.exists():
        return exact
    lowered = name.lower()
    return next((p for p in sorted(folder.iterdir()) if p.name.lower() == lowered), None)


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
