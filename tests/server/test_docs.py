"""The docs name every setting the server reads."""

from __future__ import annotations

from pathlib import Path

from yamabiko.server.settings import settings_help

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [env for env, _, _ in settings_help() if f"`{env}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"
