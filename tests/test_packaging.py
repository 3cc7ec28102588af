"""Packaging stays consistent: environment.yml pins the same lower bounds as pyproject.toml,
the tested constraints satisfy them, and the core never imports a UI or notebook library."""
from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO

# conda names that differ from the PyPI names
CONDA_NAMES = {"duckdb": "python-duckdb", "isal": "python-isal", "psycopg[binary]": "psycopg", "dask[distributed]": "dask"}


def _pyproject_requirements() -> list[Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    for extra, items in data["project"]["optional-dependencies"].items():
        reqs += [Requirement(r) for r in items if not r.startswith("postmortem-workbench")]
    return reqs


def _environment_specs() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    specs = {}
    for item in env["dependencies"]:
        entries = item["pip"] if isinstance(item, dict) else [item]
        for entry in entries:
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(>=.*)?$", entry)
            if m and not entry.startswith("-"):
                specs[m.group(1).lower()] = (m.group(2) or "").strip()
    return specs


def test_environment_yml_matches_pyproject_lower_bounds():
    specs = _environment_specs()
    for req in _pyproject_requirements():
        key = req.name.lower() if not req.extras else f"{req.name.lower()}[{','.join(sorted(req.extras))}]"
        conda = CONDA_NAMES.get(key, CONDA_NAMES.get(req.name.lower(), req.name.lower()))
        assert conda in specs, f"environment.yml lacks {req.name}"
        assert specs[conda] == str(req.specifier), f"{req.name}: pyproject {req.specifier} vs environment.yml {specs[conda]}"


def test_constraints_satisfy_lower_bounds():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = Version(version)
    for req in _pyproject_requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"constraints.txt does not pin {req.name}"
        assert pins[name] in req.specifier, f"{req.name} {pins[name]} does not satisfy {req.specifier}"


def test_core_imports_no_ui_or_notebook_library():
    pattern = re.compile(r"^\s*(import|from)\s+(panel|ipywidgets|holoviews|hvplot|bokeh|IPython|papermill|jupyter\w*)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "workbench").rglob("*.py")
                 if p.name != "runner.py" and pattern.search(p.read_text())]
    assert not offenders, f"the core imports a UI/notebook library: {offenders}"


def test_a_built_wheel_carries_the_templates_and_migrations(tmp_path):
    """A non-editable install must run notebooks and open a knowledge base: build the wheel from a
    copy of the sources (no network: --no-build-isolation with the test extra's setuptools)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("workbench", "widgets", "reports", "notebooks"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("postmortem_workbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"workbench/templates/postmortem.ipynb", "workbench/templates/recurrence.ipynb",
            "workbench/store/alembic.ini", "workbench/store/migrations/script.py.mako",
            "workbench/widgets/__init__.py", "workbench/reports/__init__.py"} <= names
    # Installed from the wheel (unpacked on sys.path, away from the checkout), the templates are found.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import workbench.postmortem.templates as nb, workbench.store.migrations as m; "
             "print(nb.TEMPLATES_DIR); print(nb.templates()); print(m.head())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    where, names_line, head = out.stdout.splitlines()
    assert where == str(site / "workbench" / "templates")
    assert names_line == "['postmortem', 'recurrence']" and head
