"""Computing stages: the models of a run, built once per process, applied to batches of stages.

A `StageWorker` holds everything a process needs to compute stages (the runtime settings, the
device setting, the weights of every method) and nothing that cannot be pickled, so the local
executor calls one in the driver process and the Ray executor ships the same object to its tasks.
Models are built on first use and kept for the rest of the run in a per-process pool, so each
process loads each model once however many stages it computes.

Every method is built through its descriptor (`cfanet.methods.MethodSpec`), which passes each the
runtime options it supports: tiling (`runtime.tile_size`, `runtime.tile_overlap`) to every method
that tiles, and on the GPU path an autocast precision (`runtime.amp`, dtype `runtime.amp_dtype`)
only to methods whose class lists that dtype in `autocast_dtypes` (the dtypes
tests/test_autocast.py shows change PSNR by less than 0.05 dB); inputs and weights are
channels-last on CUDA (`runtime.channels_last`); tiles are sized from the free device memory; a
batch of equal-size scenes is one forward pass. A method asked to run its release script's
protocol (`runtime.protocol`, `runtime.protocols`) gets `protocol="official"` instead, where its
class has that protocol (see `MethodSpec.runtime_options`).
Outputs always leave as float32 on the CPU, and metrics are computed from them in fp32.
"""

from __future__ import annotations

import gc
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cfanet.methods import MethodSpec
from pipelines.config import RuntimeConfig


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device (or host) allocation failure: `torch.cuda.OutOfMemoryError`, or a
    RuntimeError whose message says the memory ran out."""
    for where in (torch, torch.cuda):
        cls = getattr(where, "OutOfMemoryError", None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc).lower()
    return "out of memory" in message or "not enough memory" in message or "can't allocate memory" in message


def first_line(exc: BaseException) -> str:
    """The exception's message on one line (its type name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class OutOfMemoryStageError(RuntimeError):
    """A stage ran out of memory even with the smallest tile the retry goes down to."""


def choose_device(setting: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; an explicit `cuda` without a GPU is an error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device = 'cuda' but no CUDA device is available")
    return torch.device(setting)


@dataclass(frozen=True)
class WeightsFile:
    """A checkpoint as a worker finds it: its path on the driver, its SHA-256 and configuration
    size, and optionally `bundle`, a Ray object reference to its files' bytes for hosts on which
    the path does not exist (a TensorFlow checkpoint is several files sharing the path as prefix)."""

    path: str
    sha256: str
    size: str
    bundle: object | None = None

    def local_path(self) -> Path:
        """The path to load: the driver's path where it exists here, else the bundle's files
        written once per host under the temporary folder (named by the SHA-256)."""
        path = Path(self.path)
        if path.exists() or path.with_name(path.name + ".index").exists() or self.bundle is None:
            return path
        import ray

        files: dict[str, bytes] = ray.get(self.bundle)
        folder = Path(tempfile.gettempdir()) / "cfanet-bench-weights" / self.sha256
        for name, data in files.items():
            target = folder / name
            if not target.is_file() or target.stat().st_size != len(data):
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{name}.{uuid.uuid4().hex}.part"
                tmp.write_bytes(data)
                os.replace(tmp, target)
        return folder / path.name


def weights_files_of(path: Path) -> dict[str, bytes]:
    """The bytes of a checkpoint's files: the file itself, or every `<prefix>.*` file of a
    TensorFlow checkpoint prefix."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(path.parent.glob(path.name + ".*")) if p.is_file()}


def inference_precision(spec: MethodSpec, runtime: RuntimeConfig, device: torch.device) -> str:
    """"fp32", or the autocast dtype name when the profile asks for AMP on CUDA and the method
    tolerates that dtype."""
    if runtime.amp and device.type == "cuda" and runtime.amp_dtype in spec.autocast_dtypes:
        return runtime.amp_dtype
    return "fp32"


def runtime_options(spec: MethodSpec, runtime: RuntimeConfig, device: torch.device) -> dict:
    """The options `spec`'s class is built with from the profile's runtime settings: tiling for
    methods that tile, the autocast precision where it applies, the official protocol where asked."""
    return spec.runtime_options(tile=runtime.tile_size, tile_overlap=runtime.tile_overlap or None,
                                precision=inference_precision(spec, runtime, device),
                                protocol=runtime.protocol_of(spec.name))

# Per-process model pool: the pool of the most recent run only (a process serves one run at a
# time; dropping older pools frees their device memory).
_POOL: dict[str, dict[tuple[str, int], "LoadedModel"]] = {}


@dataclass
class LoadedModel:
    """A method's instance in this process and how it is called."""

    instance: object
    spec: MethodSpec
    channels_last: bool = False


@dataclass(frozen=True)
class StageWorker:
    """Computes batches of stages of one run; picklable (models are built in the process that
    computes). `specs[method]` describes each method (pickled by reference to its class, so a remote
    process imports the class's module); `weights[(method, scale)]` is None for classical methods."""

    runtime: RuntimeConfig
    device_setting: str
    specs: dict[str, MethodSpec]
    weights: dict[tuple[str, int], WeightsFile | None]
    min_tile: int = 32
    threads: int | None = None  # torch intra-op threads in the computing process (None: leave as is)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def device(self) -> torch.device:
        return choose_device(self.device_setting)

    # -- models -----------------------------------------------------------------------------------

    def _pool(self) -> dict[tuple[str, int], LoadedModel]:
        if self.token not in _POOL:
            _POOL.clear()
            _POOL[self.token] = {}
        return _POOL[self.token]

    def model(self, name: str, scale: int) -> LoadedModel:
        """The method's model in this process, built with its weights on first use."""
        pool = self._pool()
        if (name, scale) not in pool:
            pool[(name, scale)] = self._build(name, scale)
        return pool[(name, scale)]

    def instance(self, name: str, scale: int):
        return self.model(name, scale).instance

    def instances(self) -> dict[tuple[str, int], object]:
        """The instances built in this process so far, by (method, scale)."""
        return {key: model.instance for key, model in self._pool().items()}

    def _build(self, name: str, scale: int) -> LoadedModel:
        spec = self.specs[name]
        weights = self.weights.get((name, scale))
        device = self.device
        options = runtime_options(spec, self.runtime, device)
        if weights is None:
            instance = spec.create(scale, device=device, **options) if spec.deep else spec.create(scale)
        else:
            instance = spec.load(weights.local_path(), scale, size=weights.size, device=device, **options)
        channels_last = (device.type == "cuda" and self.runtime.channels_last
                         and callable(getattr(instance, "use_channels_last", None)))
        if channels_last:
            instance.use_channels_last()
        return LoadedModel(instance, spec, channels_last)

    # -- computation ------------------------------------------------------------------------------

    @staticmethod
    def _call(model: LoadedModel, inputs: list[torch.Tensor]) -> torch.Tensor:
        return getattr(model.instance, model.spec.call)(*inputs).float()

    @staticmethod
    def current_tile(instance, image: torch.Tensor) -> int | None:
        """The tile side (input pixels) the instance works with on `image` now: its configured or
        automatic tile, else the whole image; None when it cannot tile (no `tile` setting, or
        tiling switched off with a negative tile)."""
        tile = getattr(instance, "tile", None)
        if not isinstance(tile, int) or isinstance(tile, bool) or tile < 0:
            return None
        whole = max(image.shape[-2:])
        if tile == 0:
            size = getattr(instance, "_tile_size", None)
            tile = size(image) if callable(size) else 0
        return min(tile, whole) if tile > 0 else whole

    def smaller_tile(self, instance, current: int) -> int | None:
        """Half of `current`, not below the minimum (`min_tile`, and twice the tile overlap so
        that tiles still advance by at least the overlap); None when `current` is the minimum."""
        overlap = getattr(instance, "tile_overlap", 0)
        floor = max(self.min_tile, 2 * overlap if isinstance(overlap, int) else 0)
        smaller = current // 2
        if smaller >= floor:
            return smaller
        return floor if current > floor else None

    def compute(self, name: str, scale: int, inputs: list[torch.Tensor], *, what: str = "",
                log: Callable[[str], None] = print) -> tuple[torch.Tensor, list[int]]:
        """Run `name` on one batch of inputs (each (N, 3, H, W)); on out-of-memory, retry with the
        model's tile halved (later calls keep the smaller tile). Returns the float32 CPU output and
        the tile sides it had to retry with. `what` names the work in messages."""
        if self.threads and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        model = self.model(name, scale)
        device = self.device
        memory_format = torch.channels_last if model.channels_last else torch.contiguous_format
        inputs = [x.to(device).contiguous(memory_format=memory_format) for x in inputs]
        retried: list[int] = []
        while True:
            problem = None
            try:
                with torch.no_grad():
                    return self._call(model, inputs).to("cpu", torch.float32).contiguous(), retried
            except Exception as exc:  # noqa: BLE001 - only memory errors are retried, others re-raised
                if not is_out_of_memory(exc):
                    raise
                problem = first_line(exc)
            # Out of the except block: the exception and the frames holding its tensors are gone.
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            current = self.current_tile(model.instance, inputs[0])
            smaller = None if current is None else self.smaller_tile(model.instance, current)
            if smaller is None:
                how = ("it cannot be tiled" if current is None else
                       f"even with {current}-pixel tiles (the smallest this retry goes to)")
                raise OutOfMemoryStageError(
                    f"out of memory on {device} running {name} on {what or 'a stage'}: {how}; free memory on "
                    f"the device, lower runtime.tile_size or use runtime.device = 'cpu' ({problem})")
            log(f"out of memory: {name} on {what or 'a stage'} with {current}-pixel tiles; "
                f"retrying with {smaller}-pixel tiles")
            model.instance.tile = smaller
            retried.append(smaller)

    def compute_batch(self, name: str, scale: int, inputs: list[list[torch.Tensor]], *, what: str = "",
                      log: Callable[[str], None] = print) -> tuple[list[torch.Tensor], list[int]]:
        """Stages of one method whose inputs have equal sizes, as one forward pass: `inputs[i]` are
        stage i's inputs, each (1, 3, H, W). Returns one (1, 3, H', W') output per stage and the
        tile sides retried with."""
        if len(inputs) == 1:
            output, retried = self.compute(name, scale, inputs[0], what=what, log=log)
            return [output], retried
        stacked = [torch.cat(list(column)) for column in zip(*inputs)]
        output, retried = self.compute(name, scale, stacked, what=what, log=log)
        return list(output.split(1)), retried
