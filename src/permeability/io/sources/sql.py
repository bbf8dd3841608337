"""A table or a read-only query on any SQLAlchemy database, streamed in chunks, as text.

``--table`` must name a table or view the database really has (checked with the SQLAlchemy
inspector, ``schema.table`` allowed) and is read through ``Table`` reflection and ``select()``,
never by formatting the name into SQL.

``--query`` is guarded twice, because neither guard stops everything alone:

* the text must pass :func:`permeability.io.sources.sql_check.check_read_only_query` (one SELECT/WITH,
  no executable comment, no word that writes, locks or reaches outside the database);
* it runs inside a read-only transaction that is rolled back: PostgreSQL ``SET TRANSACTION READ
  ONLY`` as the transaction's first statement, MariaDB/MySQL ``START TRANSACTION READ ONLY``,
  SQLite ``PRAGMA query_only``. The database then refuses what the text check cannot see, such
  as a stored function that writes (``SELECT write_something()``). It does not refuse MariaDB's
  ``INTO OUTFILE``, which only the text check stops; give the account no ``FILE`` privilege.

Passwords never appear in labels, messages or logs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from permeability.errors import InvalidInputError, NotFoundError
from permeability.io.sources.base import RawChunk, cell_text, empty_malformed, text_frame
from permeability.io.sources.secrets import mask_secrets, mask_source, source_secrets
from permeability.io.sources.sql_check import check_read_only_query


def backend_of(url: str) -> str | None:
    """The SQLAlchemy backend name of ``url`` (``postgresql``, ``mysql``...), None if unparsable."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        return None


class SqlSource:
    """A table or a read-only query on any SQLAlchemy database, streamed in chunks."""

    def __init__(self, url: str, *, table: str | None, query: str | None, chunk_rows: int) -> None:
        from sqlalchemy import MetaData, Table, create_engine, select, text
        from sqlalchemy.pool import NullPool

        self.label = mask_source(url)
        self.chunk_rows = chunk_rows
        self._secrets = source_secrets(url)
        statement = check_read_only_query(query, backend_of(url)) if query is not None else None
        try:
            self._engine = create_engine(url, poolclass=NullPool)
        except Exception as exc:  # a bad URL or a missing driver; the message may hold the URL
            raise InvalidInputError(
                f"cannot use SQL source {self.label}: {self._clean(exc)}"
            ) from None
        try:
            self._connection = self._engine.connect()
        except Exception as exc:
            self._engine.dispose()
            raise InvalidInputError(f"cannot connect to {self.label}: {self._clean(exc)}") from None
        try:
            self._make_read_only()
            if table is not None:
                schema, name = self._resolve_table(table)
                reflected = Table(name, MetaData(), schema=schema, autoload_with=self._connection)
                _floats_as_floats(reflected)
                executable: Any = select(reflected)
            else:
                executable = text(statement or "")
            streaming = self._connection.execution_options(stream_results=True)
            self._result = streaming.execute(executable)
            if not self._result.returns_rows:
                raise InvalidInputError(
                    f"--query on {self.label} returned no result set: only a plain SELECT "
                    "that returns rows can be read"
                )
            self.headers = tuple(map(str, self._result.keys()))
        except (NotFoundError, InvalidInputError):
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise InvalidInputError(
                f"reading from {self.label} failed: {self._clean(exc)}"
            ) from None

    def _clean(self, exc: BaseException) -> str:
        original = getattr(exc, "orig", None) or exc
        first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
        return mask_secrets(first_line or type(original).__name__, self._secrets)

    def _make_read_only(self) -> None:
        """Open the read-only transaction everything below runs in (see the module docstring).

        SQLAlchemy has begun a transaction without sending anything (the driver's implicit
        BEGIN comes with the first statement), so PostgreSQL's ``SET TRANSACTION`` is that
        transaction's first statement, and MariaDB's ``START TRANSACTION READ ONLY`` starts the
        one the query runs in; the session default is made read-only too, so nothing this
        connection runs afterwards can write either. ``close`` rolls back.
        """
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            self._connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            self._connection.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        elif dialect in ("mysql", "mariadb"):
            self._connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            self._connection.exec_driver_sql("START TRANSACTION READ ONLY")
        elif dialect == "sqlite":
            self._connection.exec_driver_sql("PRAGMA query_only = ON")

    def _resolve_table(self, wanted: str) -> tuple[str | None, str]:
        """(schema, table) of a table or view that exists; the name is never put into SQL."""
        from sqlalchemy import inspect

        inspector = inspect(self._connection)

        def names(schema: str | None) -> list[str]:
            return [*inspector.get_table_names(schema=schema), *inspector.get_view_names(schema)]

        candidates: list[tuple[str | None, str]] = [(None, n) for n in names(None)]
        if "." in wanted:
            schema, _, _ = wanted.partition(".")
            if schema in inspector.get_schema_names():
                candidates += [(schema, f"{schema}.{n}") for n in names(schema)]
        exact = [(s, n) for s, n in candidates if n == wanted]
        folded = [(s, n) for s, n in candidates if n.casefold() == wanted.casefold()]
        match = exact or (folded if len(folded) == 1 else [])
        if not match:
            shown = ", ".join(sorted(n for _, n in candidates)[:30]) or "none"
            raise NotFoundError(
                f"table {wanted!r} does not exist in {self.label}; tables found: {shown}"
            )
        found_schema, qualified = match[0]
        bare = qualified.split(".", 1)[1] if found_schema is not None else qualified
        return found_schema, bare

    def chunks(self, columns: Mapping[str, str]) -> Iterator[RawChunk]:
        positions = {self.headers.index(h): name for h, name in columns.items()}
        first = 1
        while True:
            try:
                rows = self._result.fetchmany(self.chunk_rows)
            except Exception as exc:
                raise InvalidInputError(
                    f"reading from {self.label} failed: {self._clean(exc)}"
                ) from None
            if not rows and first > 1:
                return
            values = {name: [cell_text(r[i]) for r in rows] for i, name in positions.items()}
            yield RawChunk(text_frame(values, first, len(rows)), empty_malformed(columns))
            if not rows:
                return
            first += len(rows)

    def close(self) -> None:
        """Roll back (nothing is ever committed) and release the connection."""
        connection = getattr(self, "_connection", None)
        try:
            if connection is not None:
                result = getattr(self, "_result", None)
                if result is not None:
                    result.close()
                connection.rollback()
                connection.close()
        finally:
            self._engine.dispose()


def _floats_as_floats(table: Any) -> None:
    """Read floating-point columns as floats, every digit kept.

    SQLAlchemy reflects MariaDB/MySQL ``DOUBLE`` as ``Float(asdecimal=True)``, which rounds to
    10 decimals (1.2e-11 read back as ``Decimal('0E-10')``): a WVTR near the detection limit
    would change on the way in. Exact ``DECIMAL``/``NUMERIC`` columns are left as decimals.
    """
    from sqlalchemy import Float

    for column in table.columns:
        if isinstance(column.type, Float) and getattr(column.type, "asdecimal", False):
            column.type.asdecimal = False
