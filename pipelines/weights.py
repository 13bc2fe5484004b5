"""Weights of the deep methods for a run: configured checkpoint files, or demo weights.

Every deep method ends up as a checkpoint file on disk whose SHA-256 identifies it in the stage
cache and the manifest. A profile's `[weights]` table names official files; in a small-model
(demo) profile, methods without a configured file get demo weights: their small configuration
trained briefly on the demo train split by `cfanet.training`, cached under
`<cache_dir>/demo_weights/` and reused by later runs. Demo weights are labelled as such in the
manifest and in every report.

Demo weights survive kills and concurrent runs: the file is written atomically (temporary file +
rename), the trainer resumes from its own atomic checkpoints, and a file lock makes a second
process that needs the same weights wait for the first one's file instead of training again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cfanet.checkpoint import sha256_file
from pipelines.config import ConfigError, Profile
from pipelines.registry import MethodEntry, method, weights_status

META_KEY = "cfanet_bench"


@dataclass(frozen=True)
class ResolvedWeights:
    """The checkpoint a method loads, its hash, and how it was obtained."""

    method: str
    scale: int
    path: Path
    sha256: str
    size: str                 # "official" or "small"
    source: str               # "configured" or "demo"
    details: dict = field(default_factory=dict)

    def identity(self) -> dict:
        return {"weights_sha256": self.sha256, "config": {"size": self.size, "scale": self.scale}}


def save_model_checkpoint(network: torch.nn.Module, path: Path, metadata: dict) -> Path:
    """Save `network`'s state dict with our metadata (method, size, scale, how it was trained),
    atomically. Equal weights and metadata give equal bytes (saved through a file handle, so the
    archive inside is not named after the temporary file), hence equal cache keys on any machine."""
    from cfanet.training.state import save_atomic

    return save_atomic({"state_dict": network.state_dict(), META_KEY: json.dumps(metadata, sort_keys=True)}, path)


def checkpoint_metadata(path: Path) -> dict:
    """Our metadata stored in a checkpoint by `save_model_checkpoint`, or {} for other files."""
    from cfanet.checkpoint import read_checkpoint

    obj = read_checkpoint(path)
    raw = obj.get(META_KEY) if isinstance(obj, dict) else None
    return json.loads(raw) if isinstance(raw, str) else {}


def check_paper_inputs(profile: Profile, methods: list[str]) -> None:
    """Fail before any work, naming every missing file, when a profile lacks data or weights."""
    missing = []
    data = profile.dataset
    if data.kind != "demo" and not (data.root and Path(data.root).is_dir()):
        missing.append(f"dataset.root {data.root} (dataset kind {data.kind!r})")
    for name in methods:
        for scale in profile.scales:
            status = weights_status(profile, name, scale)
            if status is None or status.found:
                continue
            where = status.path if status.path else "not configured"
            missing.append(f"weights.\"{status.key}\" {where}")
    if missing:
        raise ConfigError(f"profile {profile.name!r}", "", "missing before any work was started:\n  "
                          + "\n  ".join(missing))


def demo_training_signature(entry: MethodEntry, scale: int, profile: Profile) -> str:
    """Hash of everything that determines a method's demo weights."""
    from cfanet import __version__

    training = profile.demo_training
    description = {"method": entry.name, "scale": scale, "size": "small", "steps": training.steps,
                   "patch": training.patch_size, "batch": training.batch_size, "seed": training.seed,
                   "data_seed": profile.dataset.seed, "code": __version__}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def resolve_weights(profile: Profile, name: str, scale: int, cache_dir: Path, device: str = "cpu",
                    trainer=None) -> ResolvedWeights | None:
    """The weights `name` runs with at `scale` (None for classical methods).

    `trainer(entry, scale, profile, path, device)` makes demo weights at `path`; the default is
    `pipelines.demo_training.train_demo_weights`.
    """
    entry = method(name)
    status = weights_status(profile, name, scale)
    if status is None:
        return None
    if status.source == "configured":
        if not status.found:
            raise ConfigError(f"profile {profile.name!r}", f"weights.{status.key}", f"file not found: {status.path}")
        path = status.path
        if not path.is_file():  # a TensorFlow checkpoint prefix: hash its index file
            index = path.with_name(path.name + ".index")
            digest = sha256_file(index)
        else:
            digest = sha256_file(path)
        size = checkpoint_metadata(path).get("size", "official") if path.is_file() and path.suffix in (".pt", ".pth") else "official"
        return ResolvedWeights(entry.name, scale, path, digest, size, "configured")
    if status.source == "none":
        raise ConfigError(f"profile {profile.name!r}", f"weights.{status.key}", "not configured")
    path = Path(cache_dir) / "demo_weights" / f"{entry.name}_x{scale}_{demo_training_signature(entry, scale, profile)}.pt"
    if not path.is_file():
        from pipelines.cache import file_lock

        with file_lock(path.with_name(f".{path.name}.lock")):
            if not path.is_file():  # another process may have made it while this one waited
                if trainer is None:
                    from pipelines.demo_training import train_demo_weights as trainer
                trainer(entry, scale, profile, path, device)
        if not path.is_file():
            raise RuntimeError(f"demo weights for {entry.name} x{scale}: the trainer did not write {path}")
    details = checkpoint_metadata(path)
    return ResolvedWeights(entry.name, scale, path, sha256_file(path), "small", "demo", details)
