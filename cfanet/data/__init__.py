"""Datasets of multi-exposure scenes (SICE, CF-Net layout, plain triples, the generated demo set).

`open_dataset(kind, ...)` builds any of them; each yields `Scene` objects with LR inputs made from
the HR exposures by modcrop + MATLAB bicubic downscaling.
"""

from __future__ import annotations

from pathlib import Path

from cfanet.data.base import SceneDataset
from cfanet.data.scene import DatasetError, Scene

DATASET_KINDS = ("demo", "sice", "cfnet", "triples")


def open_dataset(kind: str, scale: int, root: str | Path | None = None, **options) -> SceneDataset:
    """The dataset of `kind` at `scale`; `options` are the kind's own constructor arguments."""
    if kind == "demo":
        from cfanet.data.demo import DemoDataset

        return DemoDataset(scale, **options)
    if root is None:
        raise DatasetError(f"dataset kind {kind!r} needs a root folder")
    if kind == "sice":
        from cfanet.data.sice import SiceDataset

        return SiceDataset(root, scale, **options)
    if kind == "cfnet":
        from cfanet.data.cfnet_layout import CfnetLayoutDataset

        return CfnetLayoutDataset(root, scale, **options)
    if kind == "triples":
        from cfanet.data.triples import TriplesDataset

        return TriplesDataset(root, scale, **options)
    raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}")


__all__ = ["DATASET_KINDS", "DatasetError", "Scene", "SceneDataset", "open_dataset"]
