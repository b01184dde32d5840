"""The `agents` namespace's contract types (DESIGN.md section 7)."""

from __future__ import annotations

from typing import Final

from yamabiko.schema.base import MethodSchema

METHODS: Final[tuple[MethodSchema, ...]] = ()
