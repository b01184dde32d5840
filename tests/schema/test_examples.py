"""The examples of docs/methods.md, sent in order to a real server as a tenant admin."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support import Running, running_server
from yamabiko.protocol.errors import RemoteError
from yamabiko.schema.examples import EXAMPLES
from yamabiko.schema.methods import METHODS
from yamabiko.sessions.identity import SCOPES


def fill(value: Any, saved: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: str(saved[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: fill(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, saved) for v in value]
    return value


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_server(tmp_path) as running:
        yield running


async def test_every_example_runs_as_shown(server: Running) -> None:
    client = await server.client("ada", "acme", scopes=sorted(SCOPES))
    saved: dict[str, Any] = {}
    async with client:
        for example in EXAMPLES:
            params = fill(example.params, saved)
            schema = METHODS[example.method]
            if example.expect is not None:
                with pytest.raises(RemoteError) as refused:
                    await client.call(example.method, params, timeout=30)
                assert refused.value.wire_code == example.expect, example.method
                continue
            result = await client.call(example.method, params, timeout=30)
            assert schema.result is not None
            # The answer is what the contract says the method answers.
            msgspec.convert(result, schema.result, strict=False)
            for name, key in example.save.items():
                saved[name] = result[key]


def test_every_client_request_has_an_example() -> None:
    shown = {e.method for e in EXAMPLES}
    missing = [
        name
        for name, schema in METHODS.items()
        if schema.sender != "server"
        and not schema.is_notification
        and name not in shown | {"initialize", "session/refresh"}
    ]
    assert not missing, missing


def test_examples_are_valid_json_params() -> None:
    for example in EXAMPLES:
        json.dumps(example.params)
