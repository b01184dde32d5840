"""The checked-in openrpc.json is exactly what the types generate, and it is valid."""

from __future__ import annotations

import json

from yamabiko.schema import openrpc
from yamabiko.schema.methods import METHODS


def test_checked_in_openrpc_is_current() -> None:
    assert openrpc.PATH.read_bytes() == openrpc.render(), (
        "yamabiko/schema/openrpc.json is stale: run `make openrpc` and commit it"
    )


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_method_and_referenced_schema_is_present() -> None:
    document = json.loads(openrpc.render())
    names = [m["name"] for m in document["methods"]]
    assert sorted(names) == sorted(METHODS)
    for ref in _refs(document):
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in document["components"][section], ref
    schemas = document["components"]["schemas"]
    # Wire names are camelCase and _meta is declared on every params type.
    init = schemas["InitializeParams"]["properties"]
    assert {"protocolVersion", "clientInfo", "capabilities", "_meta"} <= set(init)
    assert document["components"]["errors"]["-32029"]["code"] == -32029


def test_params_are_the_fields_by_name() -> None:
    """A generated client sends ``{"message": ...}``, not ``{"params": {...}}``."""
    methods = {m["name"]: m for m in json.loads(openrpc.render())["methods"]}
    chat = methods["chat/send"]
    assert chat["paramStructure"] == "by-name"
    params = {p["name"]: p for p in chat["params"]}
    assert params["message"]["required"] is True
    assert params["model"]["required"] is False
    assert "params" not in params


def test_every_request_lists_its_errors() -> None:
    methods = json.loads(openrpc.render())["methods"]
    for method in methods:
        if method.get("x-notification"):
            assert "errors" not in method
            continue
        codes = {int(e["$ref"].rsplit("/", 1)[1]) for e in method["errors"]}
        if method.get("x-sender") == "server":
            continue
        assert {-32602, -32603} <= codes, method["name"]
        if "x-scope" in method:
            assert -32003 in codes, method["name"]
    by_name = {m["name"]: m for m in methods}
    chat_codes = {e["$ref"].rsplit("/", 1)[1] for e in by_name["chat/send"]["errors"]}
    assert {"-32004", "-32009", "-32010", "-32011", "-32029"} <= chat_codes


def test_the_method_reference_is_current() -> None:
    from yamabiko.schema import reference

    assert reference.PATH.read_text() == reference.render(), (
        "docs/methods.md is stale: run `make openrpc` and commit it"
    )
