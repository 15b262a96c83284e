"""What a DuckDB file someone else made may not do when Lossmap opens it.

Stores and decisions files are shared, so their content is untrusted. DuckDB's
defaults would let a crafted file act: a view can read a local file into an error
message, name an extension that DuckDB then downloads, and a macro named like a
built-in (``lower``, even the ``||`` operator) replaces it for every query that uses
the file's schema. Lossmap's own files hold tables only, so:

- ``LOCKED`` (for ``duckdb.connect(..., config=LOCKED)``) and ``lock_down(con)`` (for a
  connection that has already attached its file) turn off file and network access
  and extension installing and loading, then lock the configuration so no query can
  turn them back on;
- ``BUILTINS_FIRST`` is a search path that resolves every name to DuckDB's built-ins
  before anything in the attached store;
- ``foreign_objects(con)`` lists the views, macros, sequences and types a file holds,
  so a file that has any is refused with a message before a single query of it runs;
- ``foreign_expressions(con, ddl)`` lists the SQL a file's tables carry that Lossmap's own
  DDL does not: a generated column or a DEFAULT runs when its table is read or written,
  a CHECK when a row is added, an index expression on every write.

Tests: tests/pipeline/store/test_guard.py.
"""

from __future__ import annotations

import duckdb

LOCKED = {  # settings of every connection to a file someone else may have made
    "enable_external_access": False,  # no file, URL or database outside the one opened
    "autoinstall_known_extensions": False,  # never download an extension a query names
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,  # a table name never resolves to a Python variable
    "lock_configuration": True,  # and no query can change any of this
}

BUILTINS_FIRST = "SET search_path = 'system.main,store.main'"  # for a store attached AS store

_OBJECTS = """
SELECT 'view' AS kind, view_name AS name FROM system.main.duckdb_views()
 WHERE NOT internal AND database_name NOT IN ('system', 'temp')
UNION ALL
SELECT 'macro', function_name FROM system.main.duckdb_functions()
 WHERE NOT internal AND database_name NOT IN ('system', 'temp')
UNION ALL
SELECT 'sequence', sequence_name FROM system.main.duckdb_sequences() WHERE database_name NOT IN ('system', 'temp')
UNION ALL
SELECT 'type', type_name FROM system.main.duckdb_types() WHERE NOT internal AND database_name NOT IN ('system', 'temp')
ORDER BY kind, name
"""


_EXPRESSIONS = """
SELECT 'column ' || table_name || '.' || column_name || ' = ' || column_default FROM system.main.duckdb_columns()
 WHERE database_name NOT IN ('system', 'temp') AND column_default IS NOT NULL
UNION ALL
SELECT 'check on ' || table_name || ': ' || expression FROM system.main.duckdb_constraints()
 WHERE database_name NOT IN ('system', 'temp') AND constraint_type = 'CHECK'
UNION ALL
SELECT 'index ' || index_name || ' on ' || table_name FROM system.main.duckdb_indexes()
 WHERE database_name NOT IN ('system', 'temp')
"""
_EXPECTED: dict[tuple[str, ...], set[str]] = {}


def foreign_expressions(con: duckdb.DuckDBPyConnection, ddl: tuple[str, ...]) -> list[str]:
    """The defaults, generated columns, CHECKs and indexes in the connection's files that ``ddl`` does not make.

    Run only once ``foreign_objects`` is empty: no macro can then stand in for ``||``."""
    if ddl not in _EXPECTED:
        fresh = duckdb.connect(":memory:")
        for statement in ddl:
            fresh.execute(statement)
        _EXPECTED[ddl] = {r[0] for r in fresh.execute(_EXPRESSIONS).fetchall()}
        fresh.close()
    return sorted({r[0] for r in con.execute(_EXPRESSIONS).fetchall()} - _EXPECTED[ddl])


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Apply ``LOCKED`` to a connection's database instance (after its ATTACH: that needs file access)."""
    for name, value in LOCKED.items():  # names are the constants above
        con.execute(f"SET GLOBAL {name} = {'true' if value else 'false'}")


def foreign_objects(con: duckdb.DuckDBPyConnection) -> list[str]:
    """``'macro lower'``, ``'view runs'``...: what the connection's files hold besides tables (Lossmap writes none)."""
    return [f"{kind} {name}" for kind, name in con.execute(_OBJECTS).fetchall()]


def describe(objects: list[str]) -> str:
    """The objects for a message, at most five named."""
    shown = ", ".join(repr(o) for o in objects[:5])
    return shown + (f" and {len(objects) - 5} more" if len(objects) > 5 else "")
