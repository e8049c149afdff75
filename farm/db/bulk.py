"""Write many rows of one table at once, past SQLAlchemy's per-value type processing.

Creating a 100,000-chunk job spent two thirds of its time in SQLAlchemy turning each parameter into what the
driver takes (a datetime into SQLite's text, a list into JSON), although most columns hold the same value in every
row. Here a column's value is either the same for every row (processed once by the column's own type) or given per
row already in the form the driver takes, and the rows go to the driver's ``executemany`` as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.orm import Session


def json_int_list(values: Iterable[int]) -> str:
    """A list of integers as JSON text, the form a JSON column stores (much cheaper than ``json.dumps``)."""
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


def insert_many(
    session: Session,
    table: Table,
    same: Mapping[str, Any],
    varying: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """INSERT one row per item of ``rows``: ``same`` gives the columns whose value every row shares (processed
    by the column type once), ``varying`` names the columns each row gives, in order, already in driver form
    (strings, numbers; JSON as text, see ``json_int_list``)."""
    conn = session.connection()
    dialect = conn.dialect
    constants: list[Any] = []
    for name, value in same.items():
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        constants.append(process(value) if process is not None else value)
    names = [*same, *varying]
    compiled = insert(table).values({name: bindparam(name) for name in names}).compile(dialect=dialect)
    sql = str(compiled)
    fixed = tuple(constants)
    if compiled.positional:
        order = [names.index(name) for name in compiled.positiontup or []]
        params: list[Any] = []
        for row in rows:
            values = fixed + tuple(row)
            params.append(tuple(values[i] for i in order))
    else:
        base = dict(zip(same, constants, strict=True))
        params = [{**base, **dict(zip(varying, row, strict=True))} for row in rows]
    if params:
        conn.exec_driver_sql(sql, params)
