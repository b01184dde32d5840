"""Loading a model once: on first use in a worker thread, or at once at start-up.

Shared by the engines that run ONNX models (``ghost/onnx``, ``audio/onnx``). A failure
is remembered: every later use raises it again, so a model directory that did not load
costs one attempt, not one per keystroke (build a new engine to try again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import anyio

log = logging.getLogger(__name__)

M = TypeVar("M")


class LoadOnce(Generic[M]):
    """``build`` makes the model (blocking). An ``error_type`` it raises is the
    engine's own message (logged with ``where``, which the message leaves out);
    anything else is logged with its traceback and becomes ``error_type(fallback)``."""

    def __init__(
        self,
        build: Callable[[], M],
        *,
        error_type: type[Exception],
        fallback: str,
        where: Path,
    ) -> None:
        self._build = build
        self._error_type = error_type
        self._fallback = fallback
        self._where = where
        self._lock = threading.Lock()
        self._model: M | None = None
        self._error: Exception | None = None

    async def get(self) -> M:
        """The model, loading it off the event loop the first time."""
        if self._model is not None:
            return self._model
        return await anyio.to_thread.run_sync(self.now, abandon_on_cancel=True)

    def now(self) -> M:
        """The model, loading it in this thread if it is not yet (blocking)."""
        with self._lock:
            if self._model is not None:
                return self._model
            if self._error is not None:
                raise self._error_type(*self._error.args)
            try:
                self._model = self._build()
            except self._error_type as exc:
                log.error("%s (%s)", exc, self._where)
                self._error = exc
                raise
            except Exception as exc:  # a file this engine does not understand
                log.exception("%s: %s will not load", self._fallback, self._where)
                self._error = self._error_type(self._fallback)
                raise self._error from exc
            return self._model
