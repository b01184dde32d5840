"""The layers of docs/development.md hold: handlers -> services -> engines, store, and
sessions never see the store or the services' types."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import yamabiko

PACKAGE = Path(yamabiko.__file__).parent

FORBIDDEN = {
    "services": ("yamabiko.handlers", "yamabiko.server"),
    "sessions": ("yamabiko.services", "yamabiko.store", "yamabiko.handlers", "yamabiko.server"),
    "store": ("yamabiko.services", "yamabiko.handlers", "yamabiko.server"),
    "engines": ("yamabiko.services", "yamabiko.handlers", "yamabiko.server"),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for name in sorted(imported(path))
        if name.startswith(FORBIDDEN[layer])
    ]
    assert wrong == []


def test_handlers_holds_handlers_only() -> None:
    # Besides the shared helpers and the presets' static data, every module of
    # handlers/ is a namespace's router; node-level services live in services/.
    helpers = {"__init__", "common", "presets"}
    without_router = [
        path.name
        for path in sorted((PACKAGE / "handlers").glob("*.py"))
        if path.stem not in helpers and "\nrouter = " not in path.read_text()
    ]
    assert without_router == []
