"""The checked-in openrpc.json is exactly what the types generate, and it is valid."""

from __future__ import annotations

import json

from yamabiko.schema import openrpc
from yamabiko.schema.methods import METHODS


def test_checked_in_openrpc_is_current() -> None:
    assert openrpc.PATH.read_bytes() == openrpc.render(), (
        "yamabiko/schema/openrpc.json is stale: run `make openrpc` and commit it"
    )


def test_every_method_and_referenced_schema_is_present() -> None:
    document = json.loads(openrpc.render())
    names = [m["name"] for m in document["methods"]]
    assert sorted(names) == sorted(METHODS)
    schemas = document["components"]["schemas"]
    for method in document["methods"]:
        refs = [p["schema"]["$ref"] for p in method["params"]]
        if "result" in method:
            refs.append(method["result"]["schema"]["$ref"])
        for ref in refs:
            assert ref.rsplit("/", 1)[1] in schemas, ref
    # Wire names are camelCase and _meta is declared on every params type.
    init = schemas["InitializeParams"]["properties"]
    assert {"protocolVersion", "clientInfo", "capabilities", "_meta"} <= set(init)
    assert document["components"]["errors"]["-32029"]["code"] == -32029
