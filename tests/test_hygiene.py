"""Project hygiene: one version source, a licence and a changelog that names the version."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import prereg

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_pyprojects_as_installed():
    pyproject = (ROOT / "pyproject.toml").read_text()
    (literal,) = re.findall(r'(?m)^version = "([^"]+)"$', pyproject)  # Python 3.10: no tomllib
    assert prereg.__version__ == version("prereg") == literal
    init = (ROOT / "src" / "prereg" / "__init__.py").read_text()
    assert literal not in init  # no second literal to forget


def test_licence_and_changelog():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{prereg.__version__}]" in changelog
