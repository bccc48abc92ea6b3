"""``crm-bridge new-connector NAME``: a connector package that passes the conformance kit as is.

The package it writes is what a connector author needs and nothing more: settings, a connector
with the required methods over httpx and crm-bridge's HTTP helpers, an in-memory fake of the
vendor API behind an httpx transport (the test seam), a test that subclasses the conformance
kit, a smoke test that syncs it with crm-bridge's memory connector, and the entry point that
makes ``type = "NAME"`` work.  The templates are plain files in ``template/`` so they read like
the code they become.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template

__all__ = ["ScaffoldError", "scaffold"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

# template file -> path in the new package ({package} is the import name)
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "src/__init__.py.tmpl": "src/{package}/__init__.py",
    "src/settings.py.tmpl": "src/{package}/settings.py",
    "src/connector.py.tmpl": "src/{package}/connector.py",
    "src/fake_api.py.tmpl": "src/{package}/fake_api.py",
    "tests/test_conformance.py.tmpl": "tests/test_conformance.py",
    "tests/test_sync_smoke.py.tmpl": "tests/test_sync_smoke.py",
}


class ScaffoldError(ValueError):
    """The name or the destination cannot be used (the message says why and what to do)."""


def scaffold(name: str, parent: Path) -> Path:
    """Write package ``crm-bridge-NAME`` under ``parent``; returns its folder."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"connector name {name!r} must be 2-40 lowercase letters, digits or underscores, "
            "starting with a letter (it becomes the `type` admins write and part of the import name)"
        )
    root = parent / f"crm-bridge-{name.replace('_', '-')}"
    if root.exists():
        raise ScaffoldError(f"{root} already exists; pick another name or remove it")
    words = name.split("_")
    title = " ".join(w.capitalize() for w in words)
    camel = "".join(w.capitalize() for w in words)
    values = {
        "name": name,
        "title": title,
        "package": f"crm_bridge_{name}",
        "cls": f"{camel}Connector",
        "settings_cls": f"{camel}Settings",
    }
    templates = resources.files(__package__).joinpath("template")
    for source, target in _FILES.items():
        text = Template(templates.joinpath(source).read_text(encoding="utf-8")).substitute(values)
        path = root / target.format(package=values["package"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
