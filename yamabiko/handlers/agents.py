"""Handlers of the `agents` namespace."""

from __future__ import annotations

from yamabiko.sessions.methods import Router

router = Router()
