"""The SQL store: one set of repositories over a small database interface, with an
SQLite (aiosqlite) and a PostgreSQL (asyncpg) implementation of that interface.

Queries are written once, with ``$1``-style placeholders, in the SQL both dialects
share; the few places where the dialects differ are :class:`~.database.Dialect`
snippets, and the schema itself lives in per-dialect migration files.
"""
