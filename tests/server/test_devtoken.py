"""``GET /dev/token``: the playground's token, on a local dev server only."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.server.test_cli import serving
from tests.support import running_server
from yamabiko.client import Client
from yamabiko.server.devtoken import is_local


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_a_local_dev_server_gives_the_playground_a_token(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, _, _):
        http = url.replace("ws://", "http://").removesuffix("/ws")
        status, body = get(f"{http}/dev/token?sub=ada")
        assert status == 200
        minted = json.loads(body)
        assert (minted["sub"], minted["tenant"]) == ("ada", "dev")
        async with await Client.connect(url, token=minted["token"]) as client:
            assert await client.call("ping") == {}
            # No admin scope: a dev token is a user's.
            with pytest.raises(Exception, match="forbidden"):
                await client.call("tenants/list", {})
        # A page on another site (a DNS-rebinding name, or a cross-site fetch) gets
        # nothing: as if the path did not exist.
        assert get(f"{http}/dev/token", {"Host": "evil.example"})[0] == 404
        assert get(f"{http}/dev/token", {"Sec-Fetch-Site": "cross-site"})[0] == 404
        assert get(f"{http}/dev/token", {"Sec-Fetch-Site": "same-origin"})[0] == 200
        assert get(f"{http}/dev/token?sub=Bad!")[0] == 400


async def test_a_server_with_a_configured_key_never_mints(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:  # YAMABIKO_JWT_SECRET is set
        # The request from a thread: the server runs on this test's event loop.
        status, _ = await asyncio.to_thread(get, f"{server.http}/dev/token")
        assert status == 404


def test_only_loopback_peers_and_names_are_local() -> None:
    assert is_local("127.0.0.1:5000", "localhost:8765", None)
    assert is_local("[::1]:5000", "[::1]:8765", "same-origin")
    assert not is_local("10.0.0.7:5000", "localhost:8765", None)
    assert not is_local("127.0.0.1:5000", "yamabiko.example:8765", None)
    assert not is_local("127.0.0.1:5000", "localhost:8765", "same-site")
    assert not is_local("?", "localhost", None)
