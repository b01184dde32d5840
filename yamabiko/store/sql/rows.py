"""Shared pieces of the repositories: rows to objects, partial updates, keyset pages.

SQL text is assembled here only from fixed fragments written in this package (column
names, clauses); every value travels as a parameter.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from yamabiko.schema.objects import Page
from yamabiko.store.pagination import check_limit, decode_cursor, encode_cursor
from yamabiko.store.sql.database import Dialect, Executor, Row

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")


def to_object(dialect: Dialect, row: Row, type_: type[S], json: Sequence[str] = ()) -> S:
    """The object a row holds. ``json`` names the JSON columns, which some backends
    give back as text; the rest (text timestamps, 0/1 booleans) msgspec converts."""
    if dialect.json_as_text:
        for column in json:
            if isinstance(row[column], str):
                row[column] = msgspec.json.decode(row[column])
    # from_attributes: match the Python field names, not the camelCase wire names.
    return msgspec.convert(types.SimpleNamespace(**row), type_, strict=False, from_attributes=True)


def provided(**fields: Any) -> dict[str, Any]:
    """The fields of a partial update that were given (not ``UNSET``)."""
    return {name: value for name, value in fields.items() if value is not UNSET}


def listed(values: Sequence[T] | UnsetType) -> list[T] | UnsetType:
    """A sequence argument as a list (what the JSON encoders take), ``UNSET`` kept."""
    return values if isinstance(values, UnsetType) else list(values)


def set_clause(changes: Mapping[str, object], first: int) -> tuple[str, list[object]]:
    """``col = $n, ...`` for the changed columns, numbering from ``first``, and the values.

    The column names come from keyword arguments of our own methods, never from input.
    """
    parts = [f"{column} = ${n}" for n, column in enumerate(changes, start=first)]
    return ", ".join(parts), list(changes.values())


async def fetch_page(
    db: Executor,
    type_: type[S],
    *,
    select: str,
    where: str,
    args: Sequence[object],
    limit: int,
    cursor: str | None,
    json: Sequence[str] = (),
    order_by: str = "created_at",
    order: Literal["asc", "desc"] = "asc",
) -> Page[S]:
    """One page of ``select ... WHERE where`` ordered by (``order_by``, id).

    ``where`` uses ``$1``.. for ``args``; the keyset condition and limit are numbered after
    them. One row more than the page is read to know whether a next page exists, so the
    last page never hands out a cursor to an empty one.
    """
    check_limit(limit)
    params = list(args)
    clause = where
    if cursor is not None:
        at, item_id = decode_cursor(cursor)
        compare = ">" if order == "asc" else "<"
        n = len(params)
        clause = f"({where}) AND ({order_by}, id) {compare} (${n + 1}, ${n + 2})"
        params += [at, item_id]
    params.append(limit + 1)
    sql = f"{select} WHERE {clause} ORDER BY {order_by} {order}, id {order} LIMIT ${len(params)}"
    rows = await db.fetch(sql, *params)
    items = [to_object(db.dialect, row, type_, json) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(getattr(last, order_by), last.id)  # type: ignore[attr-defined]
    return Page(items=items, next_cursor=next_cursor)


def owner_filter(n: int, column: str = "owner") -> str:
    """SQL matching rows of the owner in parameter ``$n``, or every row when it is NULL.

    The CAST gives the parameter a type on its own, which PostgreSQL needs to plan
    ``$n IS NULL``.
    """
    return f"(CAST(${n} AS TEXT) IS NULL OR {column} = ${n})"
