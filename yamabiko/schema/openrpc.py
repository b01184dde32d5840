"""``openrpc.json``: the contract as an OpenRPC document, generated from the types.

``python -m yamabiko.schema.openrpc --write`` regenerates the checked-in file
(``make openrpc``); a test fails when it is stale. Notifications are listed as methods
with no result and ``x-notification: true``; those the server sends carry
``x-sender: server``. Params are by name, one OpenRPC param per field of the method's
params object (a generated client sends ``{"message": …}``, never ``{"params": …}``);
each request lists the error codes it can answer (:mod:`.method_errors`).
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any, Final

import msgspec

from yamabiko import __version__
from yamabiko.protocol import errors
from yamabiko.schema import method_errors
from yamabiko.schema.methods import METHODS

PATH: Final = Path(__file__).with_name("openrpc.json")

ERRORS: Final = [
    (errors.PARSE_ERROR, "Parse error"),
    (errors.INVALID_REQUEST, "Invalid request"),
    (errors.METHOD_NOT_FOUND, "Method not found"),
    (errors.INVALID_PARAMS, "Invalid params: the message names the field path"),
    (errors.INTERNAL_ERROR, "Internal error: data.errorId matches the server log"),
    (errors.UNAUTHORIZED, "Unauthorized"),
    (errors.NOT_INITIALIZED, "Not initialized"),
    (errors.FORBIDDEN, "Forbidden: missing scope"),
    (errors.NOT_FOUND, "Not found"),
    (errors.CONFLICT, "Conflict"),
    (errors.ENGINE_UNAVAILABLE, "Engine unavailable"),
    (errors.BUDGET_EXCEEDED, "Budget exceeded"),
    (errors.RATE_LIMITED, "Rate limited: data.retryAfterMs"),
    (errors.REQUEST_CANCELLED, "Request cancelled"),
    (errors.CONTENT_MODIFIED, "Content modified"),
]


def build() -> dict[str, Any]:
    """The OpenRPC document as a dict (deterministic: sorted by method name)."""
    types: list[Any] = []
    for schema in METHODS.values():
        types.append(schema.params)
        if schema.result is not None:
            types.append(schema.result)
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    # msgspec names each type's component (generics too: Page[Agent] -> Page_Agent_).
    ref_of = {id(t): r for t, r in zip(types, refs, strict=True)}
    methods: list[dict[str, Any]] = []
    for name in sorted(METHODS):
        schema = METHODS[name]
        params = components[ref_of[id(schema.params)]["$ref"].rsplit("/", 1)[-1]]
        required = set(params.get("required", ()))
        method: dict[str, Any] = {
            "name": name,
            "summary": schema.summary,
            "paramStructure": "by-name",
            "params": [
                {"name": field, "required": field in required, "schema": field_schema}
                for field, field_schema in params.get("properties", {}).items()
            ],
        }
        # The params object as one named type too, for generators that want the name.
        method["x-params"] = ref_of[id(schema.params)]
        if "description" in params and set(params.get("properties", {})) - {"_meta"}:
            method["description"] = inspect.cleandoc(params["description"])
        if schema.result is not None:
            method["result"] = {
                "name": "result",
                "schema": ref_of[id(schema.result)],
            }
            method["errors"] = [
                {"$ref": f"#/components/errors/{code}"}
                for code in method_errors.codes(name, scope=schema.scope, sender=schema.sender)
            ]
        else:
            method["x-notification"] = True
        if schema.sender != "client":
            method["x-sender"] = schema.sender
        if schema.scope is not None:
            method["x-scope"] = schema.scope
        methods.append(method)
    return {
        "openrpc": "1.3.2",
        "info": {
            "title": "Yamabiko",
            "version": __version__,
            "description": "Bidirectional JSON-RPC 2.0 over one WebSocket (ws://HOST:PORT/ws).",
        },
        "methods": methods,
        "components": {
            "schemas": dict(sorted(components.items())),
            "errors": {str(code): {"code": code, "message": msg} for code, msg in ERRORS},
        },
    }


def render() -> bytes:
    """The file's exact bytes: generated, so never edited by hand."""
    document = build()
    document["x-generated"] = "by yamabiko.schema.openrpc; do not edit (make openrpc)"
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the checked-in file")
    args = parser.parse_args(argv)
    data = render()
    if args.write:
        PATH.write_bytes(data)
        print(f"wrote {PATH}")
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
