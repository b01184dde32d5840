"""Requests left waiting when the connection ends (docs/protocol.md, Lifecycle): each
waiter, on the server and in the Python client, ends with ``ConnectionClosed``, saying
whose side closed and with which code, never a bare cancel."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.support import running_server
from yamabiko.protocol import errors

WAIT = 10.0


async def _log_record(caplog: pytest.LogCaptureFixture, method: str) -> logging.LogRecord:
    """The session's "request failed" line for ``method`` (bounded wait)."""
    async with asyncio.timeout(WAIT):
        while True:
            for record in caplog.records:
                if (
                    record.getMessage() == "request failed"
                    and record.__dict__.get("method") == method
                ):
                    return record
            await asyncio.sleep(0.01)


async def test_a_server_request_waiting_on_a_client_that_leaves_ends_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="yamabiko.session")
    async with running_server(tmp_path) as server:
        client = await server.client()
        asked = asyncio.Event()
        never = asyncio.Event()

        @client.on_request("client/confirm")
        async def confirm(params: Any) -> Any:
            asked.set()
            await never.wait()  # the user walked away: no answer

        request_id, waiter = await client.start(
            "test/ask", {"method": "client/confirm", "params": {}}
        )
        async with asyncio.timeout(WAIT):
            await asked.wait()
        await client.close()
        # The client's own request: closed by this side.
        with pytest.raises(errors.ConnectionClosed) as ours:
            await client.result(request_id, waiter, timeout=WAIT)
        assert ours.value.local is True
        assert isinstance(ours.value, ConnectionError)  # older callers still catch it
        # The server's request to the client: closed by the peer, so the handler waiting
        # on it failed with that reason instead of being cancelled silently.
        record = await _log_record(caplog, "test/ask")
        assert record.__dict__["reason"] == "connection closed by the peer before the answer"
        assert record.__dict__["code"] == errors.INTERNAL_ERROR


async def test_a_client_request_waiting_when_the_server_closes_ends_closed(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, shutdown_timeout_s=0.2) as server:
        client = await server.client()
        request_id, waiter = await client.start("test/sleep", {"seconds": 60})
        await client.call("ping", timeout=WAIT)  # the sleep is running on the server
        await asyncio.wait_for(server.app.stop(), WAIT)
        with pytest.raises(errors.ConnectionClosed) as closed:
            await client.result(request_id, waiter, timeout=WAIT)
        assert closed.value.local is False
        assert closed.value.close_code == 1001
        assert closed.value.reason == "server shutting down"
        assert "1001: server shutting down" in closed.value.message
        # Asking again after the end fails at once, with the same outcome.
        with pytest.raises(errors.ConnectionClosed):
            await client.call("ping", timeout=WAIT)
        await client.close()
