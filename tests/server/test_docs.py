"""The docs name every setting the server reads."""

from __future__ import annotations

from pathlib import Path

from yamabiko.server.settings import settings_help

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [env for env, _, _ in settings_help() if f"`{env}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_the_repository_cites_only_itself() -> None:
    """A reader has only the repository: code, docs and tests cite docs/, never an
    outside brief or a tracker's issue numbers."""
    import re

    root = DOCS.parent
    # Spelled in pieces, so that this file does not match itself.
    outside = re.compile("DESIGN" + r"\.md|" + "steer" + "ing|[Ii]ssue" + r" [0-9]")
    found = []
    for folder in ("yamabiko", "docs", "tests", "bench", "evals", "examples", "deploy"):
        for path in (root / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".json", ".ts", ".mjs", ".js", ".yaml", ".conf"}:
                continue
            if "node_modules" in path.parts:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if outside.search(line):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()[:100]}")
    found += [f"README.md: {m}" for m in outside.findall((root / "README.md").read_text())]
    assert not found, "\n".join(found)
