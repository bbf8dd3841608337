"""Whether a user's ``--query`` is one SELECT/WITH statement that only reads.

The query also runs in a read-only transaction (:mod:`permeability.io.sources.sql`), but that
does not stop everything: MariaDB/MySQL write files on the database server with
``SELECT ... INTO OUTFILE/DUMPFILE`` inside a read-only transaction, and PostgreSQL runs
``lo_export``, ``dblink_exec`` or ``pg_terminate_backend`` in one. So the text is checked first
and refused unless it is a single SELECT/WITH statement using none of the words that write,
lock, wait or reach outside the database.

The check looks at code only: string literals, quoted identifiers and comments are blanked
first, so ``WHERE x = '; DROP TABLE t'`` is data. That is safe only if the check splits the text
exactly as the server does, and the server's split depends on settings the check cannot see
(MariaDB's ``sql_mode`` flags ``ANSI_QUOTES`` and ``NO_BACKSLASH_ESCAPES``, PostgreSQL's
``standard_conforming_strings``). So the text is split once per way its dialect may split it
and must pass every split. What a split cannot follow with certainty is refused: MariaDB/MySQL
executable comments (``/*! ... */``, ``/*M! ... */``: the server runs their body as SQL),
PostgreSQL dollar-quoted strings, unterminated strings and comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from permeability.errors import InvalidInputError

_FORBIDDEN_WORDS: Final = frozenset(
    {
        "insert", "update", "delete", "merge", "upsert", "replace", "drop", "create", "alter",
        "truncate", "rename", "grant", "revoke", "copy", "call", "exec", "execute", "do",
        "set", "reset", "lock", "unlock", "vacuum", "analyze", "attach", "detach", "pragma",
        "load", "into", "handler", "commit", "rollback", "savepoint", "begin", "declare",
        "prepare", "listen", "notify", "refresh", "reindex", "cluster", "comment", "security",
        "pg_sleep", "sleep", "benchmark", "pg_terminate_backend", "pg_cancel_backend",
        "pg_reload_conf", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "lo_import",
        "lo_export", "dblink", "dblink_exec", "load_file", "setval", "nextval", "outfile",
        "dumpfile",
    }
)  # fmt: skip
_FILE_WRITERS: Final = frozenset({"outfile", "dumpfile"})
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
#: MariaDB/MySQL executable comment openers: ``/*!``, ``/*!50001``, ``/*M!``, ``/*M!100301``.
_EXECUTABLE_COMMENT: Final = re.compile(r"/\*M?!\d*")
#: A PostgreSQL dollar quote opener (``$$`` or ``$tag$``), wherever it may sit.
_DOLLAR_TAG: Final = re.compile(
    r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$"
)
EXECUTABLE_COMMENT_PROBLEM: Final = (
    "--query holds a MariaDB/MySQL executable comment (/*! ... */ or /*M! ... */), whose body "
    "the server runs as SQL; remove it"
)

AMBIGUOUS_PROBLEM: Final = (
    "--query reads differently under the database's possible settings (ANSI_QUOTES, "
    "NO_BACKSLASH_ESCAPES, standard_conforming_strings): write a quote inside a string as '' "
    "and put no backslash before a quote"
)


@dataclass(frozen=True)
class Lexing:
    """How one server configuration splits SQL text into code, literals and comments."""

    name: str
    #: ``\\'`` escapes a quote inside a string (MariaDB by default; PostgreSQL with
    #: ``standard_conforming_strings = off``).
    backslash_escapes: bool = False
    #: ``"..."`` is a string (MariaDB without ``ANSI_QUOTES``); otherwise an identifier.
    double_quoted_strings: bool = False
    backtick_identifiers: bool = False
    bracket_identifiers: bool = False
    #: ``# ...`` comments (MariaDB); ``--`` only before a space or control character (MariaDB).
    hash_comments: bool = False
    dash_comment_needs_space: bool = False
    #: Characters that end a line comment (PostgreSQL also ends one at ``\\r``).
    line_ends: str = "\n"
    nested_comments: bool = False
    #: PostgreSQL: ``E'...'`` strings take backslash escapes; ``$tag$`` quotes exist.
    escape_strings: bool = False
    dollar_quotes: bool = False
    #: MariaDB runs the body of ``/*! ... */``; elsewhere it is a comment, refused all the same
    #: (no reason to send one, and a MySQL-protocol server may sit behind another dialect name).
    executable_comments: bool = False


_MARIADB: Final = tuple(
    Lexing(
        f"mariadb(backslash_escapes={escapes}, double_quoted_strings={strings})",
        backslash_escapes=escapes,
        double_quoted_strings=strings,
        backtick_identifiers=True,
        hash_comments=True,
        dash_comment_needs_space=True,
        executable_comments=True,
    )
    for escapes in (True, False)
    for strings in (True, False)
)
_POSTGRESQL: Final = tuple(
    Lexing(
        f"postgresql(standard_conforming_strings={not escapes})",
        backslash_escapes=escapes,
        line_ends="\n\r",
        nested_comments=True,
        escape_strings=True,
        dollar_quotes=True,
    )
    for escapes in (False, True)
)
_SQLITE: Final = (Lexing("sqlite", backtick_identifiers=True, bracket_identifiers=True),)
#: The splits each SQLAlchemy backend may use; any other backend must pass all of them.
LEXINGS: Final = {
    "mysql": _MARIADB,
    "mariadb": _MARIADB,
    "postgresql": _POSTGRESQL,
    "sqlite": _SQLITE,
}
_ANY_DIALECT: Final = (*_MARIADB, *_POSTGRESQL, *_SQLITE)


@dataclass(frozen=True)
class CodeSplit:
    """The statement with literals, identifiers and comments blanked, and what was seen."""

    code: str
    executable_comment: bool = False
    #: Why the split cannot be trusted (an unterminated string...), or None.
    unsure: str | None = None


def check_read_only_query(sql: str, dialect: str | None = None) -> str:
    """The query without a trailing ';' if it is one SELECT/WITH statement that only reads.

    ``dialect`` is the SQLAlchemy backend name (``postgresql``, ``mysql``, ``mariadb``,
    ``sqlite``); unknown or None means the query must pass the rules of every dialect.
    Raises :class:`InvalidInputError` naming ``--query`` and every problem found.
    """
    statement = sql.strip().rstrip(";").strip()
    if not statement:
        raise InvalidInputError("--query is empty")
    if "\x00" in statement:  # drivers and servers cut or refuse the text there
        raise InvalidInputError("--query contains a NUL character")
    found = [
        _problems(split_code(statement, lexing))
        for lexing in LEXINGS.get(dialect or "", _ANY_DIALECT)
    ]
    problems = list(dict.fromkeys(p for split in found for p in split))
    if problems and not all(found) and ("\\" in statement or '"' in statement):
        problems.insert(0, AMBIGUOUS_PROBLEM)  # the splits disagree on a string: say why
    if problems:
        raise InvalidInputError(". ".join(problems))
    return statement


def _problems(split: CodeSplit) -> list[str]:
    if split.unsure:
        return [f"--query {split.unsure}"]
    problems = [EXECUTABLE_COMMENT_PROBLEM] if split.executable_comment else []
    if ";" in split.code:
        problems.append("--query must be a single statement; it contains ';'")
    words = [w.lower() for w in _WORD.findall(split.code)]
    if not words or words[0] not in ("select", "with"):
        problems.append("--query must start with SELECT or WITH (read-only queries only)")
    forbidden = sorted(set(words) & _FORBIDDEN_WORDS)
    if forbidden:
        problem = f"--query must only read; it uses {', '.join(w.upper() for w in forbidden)}"
        if _FILE_WRITERS & set(forbidden):
            problem += " (INTO OUTFILE/DUMPFILE makes the database server write a file)"
        problems.append(problem)
    return problems


# --------------------------------------------------------------------------- splitting


def split_code(sql: str, lexing: Lexing) -> CodeSplit:
    """Blank what ``lexing`` reads as literals, quoted identifiers and comments.

    An executable comment is flagged; under MariaDB's rules its body stays in the code (the
    server runs it).
    """
    code: list[str] = []
    i, n = 0, len(sql)
    executable_open = executable_seen = False
    while i < n:
        ch = sql[i]
        end: int | None
        if ch == "'" or (ch == '"' and lexing.double_quoted_strings):
            escapes = lexing.backslash_escapes
            if ch == "'" and lexing.escape_strings and not escapes:
                prefix = _escape_string_prefix(sql, i)
                if prefix is None:
                    return _unsure(code, "has a number run straight into a string (1E'...')")
                escapes = prefix
            end = _closing_quote(sql, i, escapes=escapes)
            if end is None:
                return _unsure(code, "has an unterminated string literal")
        elif (
            ch == '"'
            or (ch == "`" and lexing.backtick_identifiers)
            or (ch == "[" and lexing.bracket_identifiers)
        ):
            if ch == "[":
                close = sql.find("]", i + 1)
                end = close + 1 if close >= 0 else None
            else:
                end = _closing_quote(sql, i, escapes=False)
            if end is None:
                return _unsure(code, "has an unterminated quoted identifier")
        elif sql.startswith("/*", i):
            opener = _EXECUTABLE_COMMENT.match(sql, i)
            executable_seen = executable_seen or opener is not None
            if opener is not None and lexing.executable_comments:
                executable_open = True
                end = opener.end()
            else:
                end = _comment_end(sql, i, nested=lexing.nested_comments)
                if end is None:
                    return _unsure(code, "has an unterminated /* comment")
        elif executable_open and sql.startswith("*/", i):
            executable_open = False
            end = i + 2
        elif _line_comment_starts(sql, i, lexing):
            ends = [k for k in (sql.find(c, i) for c in lexing.line_ends) if k >= 0]
            end = min(ends) if ends else n
        elif ch == "$" and lexing.dollar_quotes and _DOLLAR_TAG.match(sql, i):
            return _unsure(code, "uses a dollar-quoted string ($$...$$); write it as '...'")
        else:
            code.append(ch)
            i += 1
            continue
        code.append(" ")
        i = end
    if executable_open:
        return _unsure(code, "has an unterminated executable comment (/*! ...)")
    return CodeSplit("".join(code), executable_comment=executable_seen)


def _unsure(code: list[str], reason: str) -> CodeSplit:
    return CodeSplit("".join(code), unsure=reason)


def _closing_quote(sql: str, start: int, *, escapes: bool) -> int | None:
    """Index after the quote closing the one at ``start`` (doubled quotes stay inside)."""
    quote, j, n = sql[start], start + 1, len(sql)
    while j < n:
        ch = sql[j]
        if escapes and ch == "\\":
            j += 2
        elif ch == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return None


def _comment_end(sql: str, start: int, *, nested: bool) -> int | None:
    """Index after the ``*/`` closing the comment at ``start`` (PostgreSQL nests them)."""
    if not nested:
        close = sql.find("*/", start + 2)
        return close + 2 if close >= 0 else None
    depth, j, n = 1, start + 2, len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return None


def _line_comment_starts(sql: str, i: int, lexing: Lexing) -> bool:
    if lexing.hash_comments and sql[i] == "#":
        return True
    if not sql.startswith("--", i):
        return False
    if not lexing.dash_comment_needs_space or i + 2 == len(sql):
        return True
    after = sql[i + 2]
    return ord(after) <= 32 or ord(after) == 127  # MariaDB: '1--1' is 1 - -1, not a comment


def _escape_string_prefix(sql: str, quote: int) -> bool | None:
    """PostgreSQL: does an ``E`` starting a token open the string at ``quote``?

    True for ``E'...'``; False when the ``E`` ends a longer identifier (``namE'...'``); None
    when a number runs into it (``1E'...'``), which PostgreSQL versions split differently.
    """
    if quote == 0 or sql[quote - 1] not in "eE":
        return False
    start = quote - 1
    while start > 0 and _identifier_part(sql[start - 1]):
        start -= 1
    if start == quote - 1:
        return True
    first = sql[start]
    return False if (first.isalpha() or first == "_" or ord(first) >= 0x80) else None


def _identifier_part(ch: str) -> bool:
    return ch.isalnum() or ch in "_$" or ord(ch) >= 0x80
