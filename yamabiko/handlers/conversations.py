"""Handlers of the `conversations` namespace."""

from __future__ import annotations

from yamabiko.sessions.methods import Router

router = Router()
