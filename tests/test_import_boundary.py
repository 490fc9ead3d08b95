"""Layering: ``protocol/`` is pure and sans-IO; ``keys/`` never reaches up into ``node/``.

Checked twice: statically, on the AST of every source file (so a lazy import inside a function
is caught too), and dynamically, by importing every ``protocol`` module in a fresh interpreter
and looking at what ended up in ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Network, database, process, filesystem, clock and randomness: none belongs in protocol/.
PROTOCOL_FORBIDDEN = {
    "aiohttp", "sqlite3", "sqlite_utils", "node", "keys",
    "socket", "ssl", "asyncio", "selectors", "http", "urllib", "requests", "httpx",
    "subprocess", "multiprocessing", "os", "pathlib", "shutil", "tempfile", "io",
    "time", "random", "secrets",
}
# Loaded by the interpreter before any user code (site, the editable-install hook), so for these
# only "protocol did not pull it in" can be checked at run time.
PRELOADED = {"os", "io", "urllib", "pathlib", "time"}
KEYS_FORBIDDEN = {"node", "aiohttp", "sqlite3", "sqlite_utils"}


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found under {package}/"
    return files


def imported_modules(path: Path, package: str) -> set[str]:
    """Top-level names of every module a source file imports, however it does so."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside this package
                found.add(package)
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else "")
            if name in {"__import__", "import_module"} and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value.split(".")[0])
                else:
                    found.add("<dynamic import>")
    return found


@pytest.mark.parametrize("path", _sources("protocol"), ids=lambda p: p.name)
def test_protocol_sources_import_nothing_impure(path: Path) -> None:
    bad = imported_modules(path, "protocol") & (PROTOCOL_FORBIDDEN | {"<dynamic import>"})
    assert not bad, f"protocol/{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _sources("keys"), ids=lambda p: p.name)
def test_keys_sources_do_not_import_the_node(path: Path) -> None:
    bad = imported_modules(path, "keys") & KEYS_FORBIDDEN
    assert not bad, f"keys/{path.name} imports {sorted(bad)}"


def test_the_ast_check_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import socket\n"
        "import os.path as p\n"
        "from sqlite3 import connect\n"
        "from . import sibling\n"
        "def later():\n"
        "    import asyncio\n"
        "    __import__('aiohttp')\n"
        "    importlib.import_module(name)\n"
    )
    assert imported_modules(sample, "protocol") == {
        "socket", "os", "sqlite3", "protocol", "asyncio", "aiohttp", "<dynamic import>",
    }


_PROBE = """
import importlib, json, pkgutil, sys
before = set(sys.modules)
import {package}
names = sorted(m.name for m in pkgutil.walk_packages({package}.__path__, "{package}."))
for name in names:
    importlib.import_module(name)
after = set(sys.modules)
print(json.dumps({{"modules": names, "before": sorted(before), "after": sorted(after)}}))
"""


def _probe(package: str) -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(package=package)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    probe: dict[str, list[str]] = json.loads(result.stdout)
    return probe


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_importing_protocol_loads_nothing_impure() -> None:
    probe = _probe("protocol")
    assert {"protocol.envelope", "protocol.receipt", "protocol.encoding"} <= set(probe["modules"])
    after = _top(set(probe["after"]))
    pulled_in = _top(set(probe["after"]) - set(probe["before"]))
    assert not (pulled_in & PROTOCOL_FORBIDDEN), sorted(pulled_in & PROTOCOL_FORBIDDEN)
    never_loaded = PROTOCOL_FORBIDDEN - PRELOADED
    assert not (after & never_loaded), sorted(after & never_loaded)


def test_importing_keys_loads_no_node_code() -> None:
    probe = _probe("keys")
    pulled_in = _top(set(probe["after"]) - set(probe["before"]))
    assert "protocol" in pulled_in
    assert not (pulled_in & KEYS_FORBIDDEN), sorted(pulled_in & KEYS_FORBIDDEN)
