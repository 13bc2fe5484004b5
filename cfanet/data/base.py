"""The dataset interface: an ordered, lazily loaded collection of scenes at one scale."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path

from cfanet.data.folders import read_split
from cfanet.data.scene import DatasetError, Scene, check_scene_name


class SceneDataset(abc.ABC):
    """Scenes by name, loaded on access. Subclasses implement `_all_names` and `_load`."""

    kind: str = "?"

    def __init__(self, scale: int, split_file: Path | None = None):
        if scale not in (1, 2, 3, 4, 8):
            raise DatasetError(f"unsupported scale {scale}")
        self.scale = scale
        self.split_file = Path(split_file) if split_file else None
        self._names: list[str] | None = None

    @abc.abstractmethod
    def _all_names(self) -> list[str]:
        """Every scene name the source holds, in a stable order."""

    @abc.abstractmethod
    def _load(self, name: str) -> Scene:
        """Load one scene by name."""

    @property
    def source(self) -> str:
        """Where the scenes come from, for messages: the root folder, or the dataset kind."""
        root = getattr(self, "root", None)
        return str(root) if root is not None else f"{self.kind} dataset"

    def names(self) -> list[str]:
        """Scene names in order (restricted to the split file when one is given).

        Every name must be usable as a file name in the outputs (no path characters, see
        `scene_name_problem`), so that no scene can write outside the output folder.
        """
        if self._names is None:
            names = self._all_names()
            for name in names:
                check_scene_name(name, self.source)
            self._names = read_split(self.split_file, names) if self.split_file else names
        return list(self._names)

    def load(self, name: str) -> Scene:
        if name not in self.names():
            raise KeyError(f"no scene {name!r} in this {self.kind} dataset")
        return self._load(name)

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, index: int | str) -> Scene:
        return self.load(index if isinstance(index, str) else self.names()[index])

    def __iter__(self) -> Iterator[Scene]:
        for name in self.names():
            yield self._load(name)

    def describe(self) -> str:
        """One line for logs and manifests."""
        return f"{self.kind} dataset, {len(self)} scenes, x{self.scale}"
