"""The package layout keeps its dependency direction: the import-linter layers contract of
pyproject.toml holds, it fails on an upward import, the UI layers use the core from above, and no
package's public surface hides one of its own modules."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (the test extra)")


def _lint(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(config), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"})


def test_the_layers_contract_is_kept():
    out = _lint(REPO / "pyproject.toml", REPO, REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    # A copy of the core where the telemetry layer imports the CLI: the contract must name it.
    shutil.copytree(REPO / "workbench", tmp_path / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    windows = tmp_path / "workbench" / "telemetry" / "windows.py"
    windows.write_text(windows.read_text() + "\nfrom ..cli import main  # an upward import\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    out = _lint(tmp_path / "pyproject.toml", tmp_path, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "workbench.telemetry.windows -> workbench.cli" in out.stdout


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return names


@pytest.mark.parametrize("folder", ["reports", "widgets"])
def test_ui_layers_sit_above_the_core(folder):
    for path in sorted((REPO / folder).glob("*.py")):
        for name in _imports(path):
            assert not name.startswith("workbench.cli"), f"{folder}/{path.name} imports the CLI ({name})"
            if folder == "reports":
                assert not name.startswith("workbench.widgets"), f"reports/{path.name} imports the widgets ({name})"


def test_no_public_name_hides_a_module_of_its_package():
    # `from .nudge import nudge` in a package __init__ would make `workbench.loop.nudge` the function,
    # and `from workbench.loop import nudge` would no longer give the module.
    import workbench

    for info in pkgutil.walk_packages(workbench.__path__, "workbench."):
        if not info.ispkg or ".store.migrations" in info.name:
            continue
        package = importlib.import_module(info.name)
        modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
        for name in modules:
            value = getattr(package, name, None)
            assert value is None or type(value).__name__ == "module", (
                f"{info.name}.{name} is {value!r}, which hides the module {info.name}.{name}")


def test_no_module_is_over_600_lines():
    """issue 10: a module over ~600 lines holds two or more jobs; split it by concern."""
    long = {str(p.relative_to(REPO)): n for folder in ("workbench", "widgets", "reports")
            for p in (REPO / folder).rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}
