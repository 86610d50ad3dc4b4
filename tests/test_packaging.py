"""The install story: pyproject.toml and environment.yml agree, the console command exists, CI calls the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return set(project["dependencies"]) | set(extras["cpu"]) | set(extras["notebooks"]) | set(extras["dev"])


def environment_requirements() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    pip_lines = [line.strip() for line in lines[start + 1 :] if line.startswith("      - ")]
    return {line[2:] for line in pip_lines if not line.startswith("- -e")}


def test_environment_yml_matches_pyproject() -> None:
    assert environment_requirements() == pyproject_requirements()


def test_environment_yml_pins_python_311() -> None:
    assert "  - python=3.11" in (ROOT / "environment.yml").read_text().splitlines()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^bash ci/\S+\.sh$", readme, flags=re.MULTILINE)
    assert "bash ci/test.sh" in commands and "bash ci/run_all.sh" in commands
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert "bash ci/test.sh" in ci_lines


def test_module_entry_point_shows_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gru4rec", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0
    assert "prepare" in result.stdout and "train" in result.stdout


def test_editable_install_is_a_plain_path_file_without_the_finder_warning() -> None:
    """``package-dir = {"" = "."}`` makes setuptools install the checkout editable as a .pth file holding its path;
    its default finder for flat layouts prints a warning about same-named folders at every ``bash ci/setup_env.sh``."""
    import sysconfig

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-dir"] == {"": "."}
    pth = sorted(Path(sysconfig.get_paths()["purelib"]).glob("__editable__.gru4rec_kit-*.pth"))
    if not pth:
        pytest.skip("the kit is not installed editable in this environment")
    assert Path(pth[0].read_text().strip()).resolve() == ROOT.resolve()  # a path, not "import __editable__..."


@pytest.mark.slow  # runs the lint of the whole checkout first
def test_fast_tier_deselects_the_trainings_notebooks_and_browser() -> None:
    """``bash ci/test.sh --fast`` runs pytest with ``-m "not slow and not browser"`` (and passes the rest on)."""
    if not (Path(sys.prefix) / ".gru4rec-installed").is_file():
        pytest.skip("ci/test.sh sets up its own .venv; this interpreter is not one it made")
    env = {**os.environ, "GRU4REC_VENV": sys.prefix, "GRU4REC_TEST_WORKERS": "0"}  # one process lists the tests
    done = subprocess.run(["bash", str(ROOT / "ci" / "test.sh"), "--fast", "--collect-only", "-q",
                           "tests/test_notebooks.py", "tests/test_browser_playground.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '[test] pytest -m not slow and not browser (workers: 0)' in done.stdout
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert any("test_notebook_shape" in line for line in collected), done.stdout[-2000:]
    assert not any("test_06_from_the_seed" in line or "browser_playground" in line for line in collected)
