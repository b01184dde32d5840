"""Finding the NUL character in raw params, and naming where it is."""

from __future__ import annotations

import pytest

from yamabiko.protocol.strings import nul_path


@pytest.mark.parametrize(
    ("params", "path"),
    [
        (b'{"title":"a\\u0000b"}', "$.title"),
        (b'{"a":[1,{"b":"ok"},{"c":"\\u0000"}]}', "$.a[2].c"),
        (b'{"meta":{"x\\u0000y":1}}', "$.meta"),
        (b'{"first":"\\u0000","second":"\\u0000"}', "$.first"),
        (b'{"title":"a\\\\u0000b"}', None),  # an escaped backslash, then "u0000"
        (b'{"title":"no nul"}', None),
    ],
)
def test_nul_path(params: bytes, path: str | None) -> None:
    assert nul_path(params) == path
