"""Packaging: metadata, console script, import hygiene and the README's two commands."""

import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cfanet", "baselines", "pipelines", "reports")


def test_pyproject_metadata():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "cfanet-bench"
    assert project["scripts"]["cfanet-bench"] == "pipelines.cli:main"
    deps = " ".join(project["dependencies"])
    for name in ("torch", "numpy", "opencv-python-headless", "scikit-image", "pandas", "jinja2", "matplotlib", "tqdm"):
        assert name in deps
    assert "torchvision" not in deps and "basicsr" not in deps
    assert "test" in project["optional-dependencies"] and "distributed" in project["optional-dependencies"]


def test_every_module_imports_without_torchvision_or_basicsr():
    code = (
        "import importlib, pkgutil, sys\n"
        f"for pkg in {PACKAGES!r}:\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torchvision', 'basicsr')]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_reports_never_import_torch():
    code = ("import importlib, pkgutil, sys\nimport reports\n"
            "for info in pkgutil.walk_packages(reports.__path__, 'reports.'):\n    importlib.import_module(info.name)\n"
            "assert 'torch' not in sys.modules\n")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_readme_has_exactly_two_setup_commands():
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0].strip() for b in setup.split("```sh\n")[1:]]
    assert len(blocks) == 2
    main_command, test_command = blocks
    assert "pip install torch==2.13.0" in main_command and "cfanet-bench run-all" in main_command
    assert "pytest" in test_command
    ci = (REPO / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and test_command in ci.splitlines()
