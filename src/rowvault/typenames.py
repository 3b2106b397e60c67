"""The closed set of column types a restore may create from a backup's description.

A backup's metadata carries each column's type as the source database printed it
(`sqlType`). That text never reaches SQL. It is cut by a strict pattern into words, integer
parameters, a collation and array brackets; the words are looked up in the target dialect's
table of known types, and the type is spelled again from that table, with the integers
printed by Python. Text that does not fit the pattern is refused (a validation error naming
the table and column); a well-formed name the table does not know - an enum or a domain of
the source database - gets the portable type of the column's kind instead.

`TYPELESS` marks a SQLite column declared without a type (it holds every storage class as
given); on SQLite it is spelled as no type at all, elsewhere it gets the portable type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SQL_TYPE = 200
MAX_PARAMETER = 65535
TYPELESS = "ANY"
"""The sqlType of a SQLite column without a declared type (SQLite's own word for "any type" in
STRICT tables); reflection never reads it from a real column, which gets NUMERIC affinity."""

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | \(\s*(?P<args>\d{1,5}(?:\s*,\s*\d{1,5})?)\s*\)
      | (?P<quoted>"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
      | (?P<array>\[\s*\])
    )\s*""",
    re.VERBOSE,
)
_COLLATION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
_ENUM = re.compile(r"\s*(ENUM|SET)\s*\(", re.IGNORECASE)


class TypeNameError(ValueError):
    """The type text is not something rowvault would ever create."""


@dataclass(frozen=True)
class _Rule:
    params: int = 0
    """How many integer parameters the type takes at most."""
    modifiers: frozenset[str] = frozenset()
    """What may follow the name (and its parameters), word for word."""
    collation: bool = False
    spelling: str | None = None
    """How the type is written when that is not its name ("" for no type at all)."""


@dataclass(frozen=True)
class _Parsed:
    words: tuple[str, ...]
    args: tuple[int, ...]
    args_at: int
    """How many words came before the parameters."""
    collation: str | None
    charset: str | None
    dims: int


_TZ = frozenset({"WITH TIME ZONE", "WITHOUT TIME ZONE"})
_INTERVAL_FIELDS = frozenset(
    {"YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND", "YEAR TO MONTH", "DAY TO HOUR", "DAY TO MINUTE"}
    | {"DAY TO SECOND", "HOUR TO MINUTE", "HOUR TO SECOND", "MINUTE TO SECOND"}
)
_NUMERIC = frozenset({"UNSIGNED", "ZEROFILL", "UNSIGNED ZEROFILL", "SIGNED"})
_TEXT = _Rule(1, frozenset({"BINARY"}), collation=True)

_POSTGRESQL: dict[str, _Rule] = {
    "SMALLINT": _Rule(),
    "INTEGER": _Rule(),
    "BIGINT": _Rule(),
    "REAL": _Rule(),
    "DOUBLE PRECISION": _Rule(),
    "FLOAT": _Rule(1),
    "NUMERIC": _Rule(2),
    "DECIMAL": _Rule(2),
    "MONEY": _Rule(),
    "VARCHAR": _Rule(1, collation=True),
    "CHARACTER VARYING": _Rule(1, collation=True),
    "CHAR": _Rule(1, collation=True),
    "CHARACTER": _Rule(1, collation=True),
    "BPCHAR": _Rule(1, collation=True),
    "TEXT": _Rule(collation=True),
    "BOOLEAN": _Rule(),
    "DATE": _Rule(),
    "TIME": _Rule(1, _TZ),
    "TIMESTAMP": _Rule(1, _TZ),
    "INTERVAL": _Rule(1, _INTERVAL_FIELDS),
    "BYTEA": _Rule(),
    "UUID": _Rule(),
    "JSON": _Rule(),
    "JSONB": _Rule(),
    "INET": _Rule(),
    "CIDR": _Rule(),
    "MACADDR": _Rule(),
    "MACADDR8": _Rule(),
    "BIT": _Rule(1),
    "BIT VARYING": _Rule(1),
    "VARBIT": _Rule(1),
    "TSVECTOR": _Rule(),
    "XML": _Rule(),
    "OID": _Rule(),
}

_MYSQL: dict[str, _Rule] = {
    **{name: _Rule(1, _NUMERIC) for name in ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT")},
    **{name: _Rule(2, _NUMERIC) for name in ("FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC")},
    "BIT": _Rule(1),
    "BOOL": _Rule(),
    "BOOLEAN": _Rule(),
    **{name: _TEXT for name in ("CHAR", "VARCHAR", "TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT")},
    **{name: _Rule(1) for name in ("BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB")},
    "DATE": _Rule(),
    "TIME": _Rule(1),
    "DATETIME": _Rule(1),
    "TIMESTAMP": _Rule(1),
    "YEAR": _Rule(1),
    "JSON": _Rule(),
    "UUID": _Rule(),  # MariaDB 10.7+
    "INET4": _Rule(),
    "INET6": _Rule(),
}

_SQLITE: dict[str, _Rule] = {
    **{
        name: _Rule(2)
        for name in (
            "INTEGER",
            "INT",
            "BIGINT",
            "SMALLINT",
            "TINYINT",
            "REAL",
            "FLOAT",
            "DOUBLE",
            "DOUBLE PRECISION",
            "NUMERIC",
            "DECIMAL",
            "TEXT",
            "VARCHAR",
            "CHAR",
            "NVARCHAR",
            "NCHAR",
            "CLOB",
            "BLOB",
            "BOOLEAN",
            "BOOL",
            "DATE",
            "DATETIME",
            "TIME",
            "TIMESTAMP",
            "JSON",
        )
    },
    TYPELESS: _Rule(spelling=""),
}

_KNOWN: dict[str, dict[str, _Rule]] = {"postgresql": _POSTGRESQL, "mysql": _MYSQL, "sqlite": _SQLITE}


def check_type_text(sql: str) -> None:
    """Raise TypeNameError unless `sql` has the shape of a type name (on any engine)."""
    _parse(sql)


def vetted_type(sql: str, dialect: str) -> str | None:
    """`sql` spelled again from `dialect`'s known types, or None for the portable type.

    Raises TypeNameError when `sql` is not a type name at all."""
    parsed = _parse(sql)
    if parsed is None:
        return None
    known = _KNOWN.get(dialect, {})
    words = [w.upper() for w in parsed.words]
    for size in range(len(words), 0, -1):
        name = " ".join(words[:size])
        rule = known.get(name)
        if rule is not None:
            return _spell(name, rule, words[size:], parsed, dialect, size)
    return None


def _spell(name: str, rule: _Rule, rest: list[str], parsed: _Parsed, dialect: str, size: int) -> str | None:
    if len(parsed.args) > rule.params or (parsed.args and parsed.args_at != size):
        return None
    if rest and " ".join(rest) not in rule.modifiers:
        return None
    if (parsed.collation or parsed.charset) and not rule.collation:
        return None
    if parsed.dims and dialect != "postgresql":
        return None
    if rule.spelling is not None:
        return None if rest or parsed.args else rule.spelling
    text = name
    if parsed.args:
        text += "(" + ", ".join(str(int(a)) for a in parsed.args) + ")"
    if rest:
        text += " " + " ".join(rest)
    if parsed.charset:
        text += f" CHARACTER SET {parsed.charset}"
    if parsed.collation:
        quote = '"' if dialect == "postgresql" else ""
        text += f" COLLATE {quote}{parsed.collation}{quote}"
    return text + "[]" * parsed.dims


def _parse(sql: str) -> _Parsed | None:
    """Cut `sql` into its parts; None for text that means "no particular type"."""
    if not sql.strip():
        return None
    if len(sql) > MAX_SQL_TYPE:
        raise TypeNameError(f"the type text is longer than {MAX_SQL_TYPE} characters")
    if _ENUM.match(sql):
        return None  # its values are never copied: the column gets the portable type
    words: list[str] = []
    args: tuple[int, ...] = ()
    args_at = 0
    collation: str | None = None
    charset: str | None = None
    dims = 0
    pos = 0
    pending: str | None = None  # "COLLATE" or "CHARACTER SET": a name comes next
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None or match.end() == pos:
            raise TypeNameError(f"unexpected {sql[pos : pos + 20]!r}")
        pos = match.end()
        word, quoted = match.group("word"), match.group("quoted")
        if pending is not None:
            value = quoted[1:-1] if quoted else word
            if value is None or not _COLLATION.fullmatch(value) or (pending == "CHARSET" and quoted):
                raise TypeNameError("a collation or character set must be a plain name")
            if pending == "COLLATE":
                collation = value
            else:
                charset = value
            pending = None
        elif word is not None and word.upper() == "COLLATE":
            pending = "COLLATE"
        elif word is not None and word.upper() == "SET" and words and words[-1].upper() == "CHARACTER":
            words.pop()
            pending = "CHARSET"
        elif word is not None:
            if dims or collation or charset:
                raise TypeNameError(f"unexpected {word!r} after the type")
            words.append(word)
        elif match.group("args") is not None:
            if args or dims or not words:
                raise TypeNameError("parameters in an unexpected place")
            args = tuple(int(a) for a in re.split(r"\s*,\s*", match.group("args").strip()))
            if any(a > MAX_PARAMETER for a in args):
                raise TypeNameError(f"a type parameter is larger than {MAX_PARAMETER}")
            args_at = len(words)
        elif match.group("array") is not None:
            dims += 1
        else:  # a quoted name: an enum or domain type of the source
            if words or args or dims:
                raise TypeNameError("a quoted name in an unexpected place")
            words.append(quoted)
    if pending is not None or not words:
        raise TypeNameError("the type text is incomplete")
    if any(w.startswith('"') for w in words):
        return _Parsed((), (), 0, None, None, 0)  # unknown anywhere: the portable type
    return _Parsed(tuple(words), args, args_at, collation, charset, dims)
