"""What a plain install (no extras) can do, and that no module has two import names."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import crm_bridge

ROOT = Path(__file__).resolve().parents[2]

# Runs in a child interpreter where the emulators extra's packages cannot be imported.
_WITHOUT_EMULATORS = """
import sys
for name in ("starlette", "uvicorn", "trustme"):
    sys.modules[name] = None  # import of a None entry raises ImportError
from crm_bridge.cli import main
import crm_bridge.sync.runner, crm_bridge.connectors.salesforce, crm_bridge.connectors.hubspot
sys.argv = ["crm-bridge", *sys.argv[1:]]
main()
"""


def _without_emulators(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EMULATORS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_the_engine_and_connectors_import_without_the_emulators_extra() -> None:
    listing = _without_emulators("connectors", "list")
    assert listing.returncode == 0, listing.stderr
    assert "salesforce" in listing.stdout


def test_demo_without_the_emulators_extra_says_how_to_install_it() -> None:
    for verb in ("demo", "emulate"):
        result = _without_emulators(verb)
        assert result.returncode == 2, (verb, result.stdout, result.stderr)
        assert 'pip install "crm-bridge[emulators]"' in result.stderr
        assert "starlette" in result.stderr
        assert "Traceback" not in result.stderr


def test_every_module_has_exactly_one_import_name() -> None:
    """Import every module of the package, then look for one file loaded under two names."""
    for info in pkgutil.walk_packages(crm_bridge.__path__, "crm_bridge."):
        # __main__ runs the CLI; alembic loads the migration scripts itself, by file path
        if not info.name.endswith(".__main__") and ".migrations." not in info.name:
            importlib.import_module(info.name)
    package = Path(crm_bridge.__file__).resolve().parent
    by_file: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(package):
            by_file.setdefault(str(Path(path).resolve()), []).append(name)
    twice = {path: names for path, names in by_file.items() if len(names) > 1}
    assert not twice, twice
    assert len(by_file) > 100  # the walk really imported the package
    links = [p for p in package.rglob("*") if p.is_symlink()]
    assert not links, links
    assert not (ROOT / "sync" / "__init__.py").exists()
    assert not (ROOT / "connectors" / "__init__.py").exists()
