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

from cfanet.checkpoint import sha256_file
from cfanet.methods import MethodSpec
from pipelines.config import ConfigError, Profile
from pipelines.model_files import checkpoint_metadata, save_model_checkpoint  # noqa: F401 - re-exported
from pipelines.registry import weights_status


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


def check_paper_inputs(profile: Profile, methods: list[MethodSpec]) -> None:
    """Fail before any work, naming every missing file, when a profile lacks data or weights."""
    missing = []
    data = profile.dataset
    if data.kind != "demo" and not (data.root and Path(data.root).is_dir()):
        missing.append(f"dataset.root {data.root} (dataset kind {data.kind!r})")
    for spec in methods:
        for scale in profile.scales:
            status = weights_status(profile, spec, scale)
            if status is None or status.found:
                continue
            where = status.path if status.path else "not configured"
            line = f"weights.\"{status.key}\" {where}"
            if line not in missing:  # a scale-free method has one key for every scale
                missing.append(line)
    if missing:
        raise ConfigError(f"profile {profile.name!r}", "", "missing before any work was started:\n  "
                          + "\n  ".join(missing))


def demo_training_signature(entry: MethodSpec, scale: int, profile: Profile) -> str:
    """Hash of everything that determines a method's demo weights: the settings, and the code of the
    method and of the demo trainer (their import closures), so an edit to either trains anew."""
    from pipelines.codehash import closure_digest

    training = profile.demo_training
    description = {"method": entry.name, "scale": scale, "size": "small", "steps": training.steps,
                   "patch": training.patch_size, "batch": training.batch_size, "seed": training.seed,
                   "data_seed": profile.dataset.seed,
                   "code": closure_digest([entry.module, "pipelines.demo_training"])}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def demo_weights_path(profile: Profile, entry: MethodSpec, scale: int, cache_dir: Path) -> Path:
    """Where the demo weights of `entry` at `scale` are (or will be) cached."""
    return Path(cache_dir) / "demo_weights" / f"{entry.name}_x{scale}_{demo_training_signature(entry, scale, profile)}.pt"


def resolve_weights(profile: Profile, entry: MethodSpec, scale: int, cache_dir: Path, device: str = "cpu",
                    trainer=None) -> ResolvedWeights | None:
    """The weights method `entry` runs with at `scale` (None for methods without weights).

    `trainer(entry, scale, profile, path, device)` makes demo weights at `path`; the default is
    `pipelines.demo_training.train_demo_weights`.
    """
    status = weights_status(profile, entry, scale)
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
    path = demo_weights_path(profile, entry, scale, cache_dir)
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
