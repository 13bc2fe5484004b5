"""`cfanet-bench doctor`: what this machine and this configuration have and lack."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

from pipelines.config import BenchmarkConfig, Profile

PACKAGES = ("torch", "numpy", "scipy", "opencv-python-headless", "scikit-image", "pandas", "jinja2",
            "matplotlib", "tqdm")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_report() -> dict:
    """Torch build and the accelerator it sees."""
    import torch

    report = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
              "cuda_build": torch.version.cuda, "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        report.update(device=torch.cuda.get_device_name(0), gpu_memory_free_gib=round(free / 2**30, 1),
                      gpu_memory_total_gib=round(total / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
    else:
        report["device"] = "cpu"
    return report


def data_report(profile: Profile) -> dict:
    data = profile.dataset
    if data.kind == "demo":
        return {"kind": "demo", "found": True, "note": "generated from scikit-image photographs; no files needed"}
    root = data.root
    return {"kind": data.kind, "root": str(root), "found": bool(root and Path(root).is_dir())}


def weights_report(profile: Profile, config: BenchmarkConfig | None = None) -> dict[str, dict]:
    """For every registered method with weights and every scale: the configured path and whether
    the file exists, or whether its demo weights are already cached or would be trained first."""
    from pipelines.registry import methods, weights_status
    from pipelines.weights import demo_weights_path

    report = {}
    for spec in methods(config).specs.values():
        for scale in profile.scales:
            status = weights_status(profile, spec, scale)
            if status is None or status.key in report:
                continue
            if status.source == "configured":
                report[status.key] = {"path": str(status.path), "found": status.found,
                                      "status": "found" if status.found else "missing"}
            elif status.source == "demo":
                cached = demo_weights_path(profile, spec, scale, Path(profile.cache_dir))
                report[status.key] = ({"path": str(cached), "found": True, "status": "demo weights (cached)"}
                                      if cached.is_file() else
                                      {"path": None, "found": False, "status": "demo weights (trained on first use)"})
            else:
                report[status.key] = {"path": None, "found": False, "status": "not configured"}
    return report


def doctor(config: BenchmarkConfig, profile_name: str | None = None) -> dict:
    """Everything `doctor` prints, as a dictionary."""
    profile = config.profile(profile_name)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in ("cfanet-bench",) + PACKAGES},
        "config": config.source,
        "profile": profile.name,
        "device": device_report(),
        "data": data_report(profile),
        "weights": weights_report(profile, config),
    }


def format_doctor(report: dict) -> str:
    """Human-readable lines for `doctor`'s report."""
    lines = [f"python      {report['python']} ({report['platform']})"]
    lines += [f"  {name:<24}{version}" for name, version in report["packages"].items()]
    dev = report["device"]
    lines.append(f"device      {dev['device']} (torch {dev['torch']}, CUDA build {dev['cuda_build']}, "
                 f"{dev['cpu_threads']} CPU threads)")
    if dev["cuda_available"]:
        lines.append(f"  GPU memory free {dev['gpu_memory_free_gib']} / {dev['gpu_memory_total_gib']} GiB, bf16 {dev['bf16']}")
    lines.append(f"config      {report['config']}, profile {report['profile']}")
    data = report["data"]
    lines.append(f"data        {data['kind']}: " + ("found" if data["found"] else f"NOT FOUND at {data.get('root')}")
                 + (f" ({data['note']})" if data.get("note") else ""))
    lines.append("weights")
    for key, item in report["weights"].items():
        where = f" {item['path']}" if item["path"] else ""
        lines.append(f"  {key:<12}{item['status']}{where}")
    return "\n".join(lines)
