"""Writes a session gathers and sends in one statement per table, before anything in it reads, and at the latest
before it commits (issue 12, throughput).

A dispatch pass that applies 48 finished one-frame chunks appends 48 frame rows and 48 ledger rows and adds 144
observations to the running totals. As ORM objects each row costs its attribute events and its own share of the
flush; here a row is a plain dict, and the rows of one table go to the database as one ``executemany``
(``insert_later``); work that can be folded into one change per pass (the totals) registers a function that runs
first (``before_write``).

When they are written: before any statement the session executes (``Session.execute``, ``scalars``, ``get`` that
misses the identity map: the hook ``do_orm_execute``) unless autoflush is off (``no_autoflush``), so a read in the
same transaction sees them as it saw autoflushed objects; and before the commit, after the ORM's own flush (rows
that reference new ORM rows find them). A rollback drops them. A read through ``Session.connection()`` directly
does not see rows not yet written: call ``write`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import FromClause, TableClause, event, insert
from sqlalchemy.orm import ORMExecuteState, Session

_ROWS = "farm.deferred.rows"
_FOLDS = "farm.deferred.folds"
_HOOKED = "farm.deferred.hooked"
_FORGET = "farm.deferred.forget"


def insert_later(session: Session, table: FromClause, row: dict[str, Any]) -> None:
    """INSERT ``row`` (column name -> value, as the ORM would take it) into ``table`` with the session's next
    write; rows of one table keep their order."""
    rows: dict[FromClause, list[dict[str, Any]]] | None = session.info.get(_ROWS)
    if rows is None:
        _hook(session)
        rows = session.info[_ROWS] = {}
    bucket = rows.get(table)
    if bucket is None:
        rows[table] = [row]
    else:
        bucket.append(row)


def before_write(session: Session, name: str, fold: Callable[[Session], None]) -> None:
    """Run ``fold(session)`` once before the session's next write. ``name``: one fold of a kind per write, and the
    ``Session.info`` key where the caller gathers what the fold adds: a rollback drops it with the fold."""
    folds: dict[str, Callable[[Session], None]] | None = session.info.get(_FOLDS)
    if folds is None:
        _hook(session)
        folds = session.info[_FOLDS] = {}
    folds.setdefault(name, fold)


def forget_on_rollback(session: Session, key: str) -> None:
    """Drop ``session.info[key]`` (rows read for the transaction, say) when the transaction rolls back."""
    _hook(session)
    session.info.setdefault(_FORGET, set()).add(key)


def write(session: Session) -> None:
    """Run the pending folds, then send the pending rows (one ``executemany`` per table)."""
    folds: dict[str, Callable[[Session], None]] | None = session.info.pop(_FOLDS, None)
    if folds:
        for fold in folds.values():
            fold(session)
    rows: dict[FromClause, list[dict[str, Any]]] | None = session.info.pop(_ROWS, None)
    if rows:
        connection = session.connection()
        for table, values in rows.items():
            connection.execute(insert(cast(TableClause, table)), values)  # a mapped class's table


def pending(session: Session) -> bool:
    """Whether the session holds writes not sent yet."""
    return bool(session.info.get(_ROWS) or session.info.get(_FOLDS))


def _hook(session: Session) -> None:
    # Listeners on this session only: sessions that never defer a write pay nothing for the hooks.
    if session.info.get(_HOOKED):
        return
    session.info[_HOOKED] = True
    event.listen(session, "do_orm_execute", _before_statement)
    event.listen(session, "before_commit", _before_commit)
    event.listen(session, "after_rollback", _drop)


def _before_statement(state: ORMExecuteState) -> None:
    # Under ``no_autoflush`` a read wants none of the pending changes, as with the ORM's own objects.
    if state.session.autoflush and pending(state.session):
        write(state.session)


def _before_commit(session: Session) -> None:
    if pending(session):
        session.flush()  # the ORM's rows first: a deferred row may refer to one
        write(session)


def _drop(session: Session) -> None:
    session.info.pop(_ROWS, None)
    for name in [*(session.info.pop(_FOLDS, None) or {}), *(session.info.pop(_FORGET, None) or ())]:
        session.info.pop(name, None)
