"""SQL statements built once per row shape, for the rows a node writes on every message.

sqlite-utils' ``insert`` and ``update`` read the table list and the columns on every call; on
the path of each envelope that cost more than the commit itself (see bench/README.md). These
two build the statement from the row's keys once and reuse it. Table and column names come from
the code, never from input.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

__all__ = ["insert", "insert_many", "update"]

_SQL: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], str] = {}


def _insert_sql(table: str, columns: tuple[str, ...], conflict: str) -> str:
    key = ("insert", f"{table}/{conflict}", columns, ())
    sql = _SQL.get(key)
    if sql is None:
        verb = f"INSERT OR {conflict}" if conflict else "INSERT"
        sql = (f"{verb} INTO [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
               f"VALUES ({', '.join('?' * len(columns))})")
        _SQL[key] = sql
    return sql


def insert(db: sqlite_utils.Database, table: str, row: dict[str, Any], *,
           conflict: str = "") -> None:
    """One row; ``conflict`` is ``"REPLACE"`` or ``"IGNORE"`` for ``INSERT OR ...``."""
    columns = tuple(row)
    db.execute(_insert_sql(table, columns, conflict), [row[c] for c in columns])


def insert_many(db: sqlite_utils.Database, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows of one shape (the first row's keys) in one ``executemany``."""
    if not rows:
        return
    columns = tuple(rows[0])
    db.conn.executemany(_insert_sql(table, columns, ""),
                        [[row[c] for c in columns] for row in rows])


def update(db: sqlite_utils.Database, table: str, where: dict[str, Any],
           changes: dict[str, Any]) -> None:
    """Set ``changes`` on the rows whose columns equal ``where``."""
    if not changes:
        return
    key = ("update", table, tuple(changes), tuple(where))
    sql = _SQL.get(key)
    if sql is None:
        sql = (f"UPDATE [{table}] SET {', '.join(f'[{c}] = ?' for c in changes)} "
               f"WHERE {' AND '.join(f'[{c}] = ?' for c in where)}")
        _SQL[key] = sql
    db.execute(sql, [*changes.values(), *where.values()])
