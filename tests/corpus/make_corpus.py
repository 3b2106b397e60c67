"""Write rowvault's hostile and broken input corpus: `python tests/corpus/make_corpus.py OUTDIR`.

Every case is one file plus what must come of restoring it (README.md beside this script
lists them): `refused` - a clear error naming the file and the place, the database unchanged
- or `partial` - the restore completes, every record it did not write is named in the report
(`bad`), and the rows written equal the good records (`good`, laid over the `BASELINE`).

The files are restored into a database built by `seed(url)`: the `TARGET` schema holding the
`BASELINE` rows. Everything is deterministic (gzip without a time stamp, no randomness), so
the same script writes the same bytes on every machine. Importable: `cases()` lists the cases
without writing anything (for test collection), `build(outdir)` writes them.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

Record = dict[str, Any]
Tables = dict[str, list[Record]]
Outcome = Literal["refused", "partial"]
MiB = 1 << 20

# -- the target ----------------------------------------------------------------------------

TARGET = sa.MetaData()
sa.Table(
    "users",
    TARGET,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("profile", sa.JSON),
    sa.Column("created_at", sa.DateTime),
)
sa.Table(
    "orders",
    TARGET,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("total", sa.Numeric(12, 2)),
    sa.Column("note", sa.Text),
)
sa.Table(  # a record's `createdAt` and `created_at` both match its created_at
    "user_accounts",
    TARGET,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("login", sa.String(50)),
    sa.Column("created_at", sa.DateTime),
)
sa.Table(  # with user_accounts: a file's `UserAccounts` matches two tables
    "useraccounts",
    TARGET,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("login", sa.String(50)),
)

BASELINE: Tables = {
    "users": [
        {
            "id": i,
            "email": f"old{i}@example.com",
            "name": f"Old {i}",
            "score": None,
            "profile": None,
            "created_at": None,
        }
        for i in (1, 2, 3)
    ],
    "orders": [{"id": i, "user_id": i, "total": "1.00", "note": "old"} for i in (1, 2)],
    "user_accounts": [{"id": 1, "login": "root", "created_at": "2023-06-01T00:00:00"}],
    "useraccounts": [],
}
"""What the target holds before each restore."""


def seed(url: str) -> None:
    """Create the target schema in an empty database and fill in the baseline."""
    engine = sa.create_engine(url)
    try:
        TARGET.create_all(engine)
        with engine.begin() as conn:
            for name, records in BASELINE.items():
                if records:
                    conn.execute(TARGET.tables[name].insert(), [typed(name, r) for r in records])
    finally:
        engine.dispose()


def typed(table: str, record: Record) -> Record:
    """A record's values as the target's Python types (datetimes from ISO text)."""
    out = dict(record)
    for column in TARGET.tables[table].columns if table in TARGET.tables else ():
        value = out.get(column.name)
        if isinstance(column.type, sa.DateTime) and isinstance(value, str):
            out[column.name] = datetime.fromisoformat(value)
    return out


# -- the good records ----------------------------------------------------------------------

USERS: list[Record] = [
    {
        "id": i,
        "email": f"user{i}@example.com",
        "name": f"User {i}",
        "score": i + 0.5,
        "profile": {"tags": ["a", "b", "c"][: i % 4], "level": i % 5},
        "created_at": f"2024-01-{i % 28 + 1:02d}T10:{i:02d}:00",
    }
    for i in range(1, 31)
]
ORDERS: list[Record] = [
    {"id": i, "user_id": (i - 1) % 20 + 1, "total": f"{i * 3}.25", "note": f"order {i}"} for i in range(1, 41)
]
"""Users 1-20 have orders; users 21-30 have none (a bad one fails alone)."""
LEAF = 25
"""A user no order refers to."""


def good_tables() -> Tables:
    return {"users": copy.deepcopy(USERS), "orders": copy.deepcopy(ORDERS)}


_SQLITE = sa.create_engine("sqlite://").dialect


def _columns(table: str) -> list[dict[str, Any]]:
    kinds = {
        sa.Integer: "integer",
        sa.String: "string",
        sa.Float: "float",
        sa.JSON: "json",
        sa.DateTime: "datetime",
        sa.Numeric: "decimal",
    }
    described = []
    for column in TARGET.tables[table].columns:
        kind = next(k for t, k in kinds.items() if isinstance(column.type, t))
        entry: dict[str, Any] = {
            "name": column.name,
            "type": kind,
            "sqlType": str(column.type.compile(_SQLITE)),
            "nullable": bool(column.nullable),
        }
        if isinstance(column.type, sa.String) and column.type.length:
            entry["length"] = column.type.length
        if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float):
            entry.update(precision=column.type.precision, scale=column.type.scale)
        described.append(entry)
    return described


def description(table: str, count: int) -> dict[str, Any]:
    """The metadata's description of a target table, as rowvault's backup writes it."""
    fks = [
        {"columns": [fk.parent.name], "references": fk.column.table.name, "referredColumns": [fk.column.name]}
        for fk in TARGET.tables[table].foreign_keys
    ]
    unique = [["email"]] if table == "users" else []
    return {
        "count": count,
        "columns": _columns(table),
        "primaryKey": ["id"],
        "unique": unique,
        "foreignKeys": fks,
        "indexes": [],
    }


def metadata_for(tables: Mapping[str, list[Any]], **extra: Any) -> dict[str, Any]:
    """rowvault's metadata for `tables` (described when they are target tables)."""
    return {
        "format": "rowvault",
        "version": 1,
        "generator": "rowvault corpus",
        "dialect": "sqlite",
        "tables": {
            name: description(name, len(records)) if name in TARGET.tables else {"count": len(records)}
            for name, records in tables.items()
        },
        **extra,
    }


# -- writing files -------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def lines_file(tables: Mapping[str, list[Record | bytes]], metadata: dict[str, Any] | None = None) -> bytes:
    """rowvault's line layout: the metadata line, then one record per line per table. A
    record given as bytes is written as it is (damage)."""
    meta = metadata if metadata is not None else metadata_for(tables)
    out = [b'{"metadata":' + dumps(meta)]
    for name, records in tables.items():
        out.append(b",\n" + dumps(name) + b":[")
        if records:
            lines = [r if isinstance(r, bytes) else dumps(r) for r in records]
            out.append(b"\n" + b",\n".join(lines))
        out.append(b"\n]")
    out.append(b"\n}\n")
    return b"".join(out)


def pretty_file(document: Any) -> bytes:
    """Any other JSON layout: pretty-printed, read by the incremental parser."""
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def gz_member_repeated(block: bytes, times: int) -> bytes:
    """`times` gzip members of `block`: what they expand to costs nothing to write."""
    return gz(block) * times


def good_lines() -> bytes:
    return lines_file(good_tables())


def good_pretty() -> bytes:
    tables = good_tables()
    return pretty_file({"metadata": metadata_for(tables), **tables})


# -- the cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One corpus file and what restoring it must end in."""

    file: str
    outcome: Outcome
    about: str
    make: Callable[[], bytes] = field(repr=False, compare=False)
    place: tuple[str, ...] = ()
    """refused: words the message must hold besides the file's name (the place)."""
    api_place: tuple[str, ...] | None = None
    """refused: the words over HTTP, where the service's own caps may refuse it first."""
    bad: frozenset[str] = frozenset()
    """partial: `table:id` of every record the report must name."""
    good: Tables | None = None
    """partial: records that must be in the database afterwards (laid over BASELINE);
    None: the good records (USERS, ORDERS) less the bad ones."""
    lost: frozenset[str] = frozenset()
    """partial: `table:id` of good records the file spoils without naming them so (a key
    rewritten): not expected in the database either."""
    faces: frozenset[str] = frozenset()
    """Extra runs: `cli` (a real subprocess), `engines` (PostgreSQL and MariaDB), `async`
    (the 202 path of the API)."""
    big: bool = False
    """Costs seconds or tens of MB to write or read: three times the timeout."""

    def expected(self) -> Tables:
        """Each table's rows after a partial restore: the baseline with the good records."""
        if self.good is not None:
            good = self.good
        else:
            left_out = {_original_key(key) for key in self.bad | self.lost}
            good = {
                name: [r for r in records if f"{name}:{r['id']}" not in left_out]
                for name, records in good_tables().items()
            }
        final: dict[str, dict[Any, Record]] = {
            name: {r["id"]: r for r in rows} for name, rows in BASELINE.items()
        }
        for name, records in good.items():
            table = final.setdefault(name, {})
            for record in records:
                table[record["id"]] = {**table.get(record["id"], {}), **record}
        return {name: list(rows.values()) for name, rows in final.items()}


def _original_key(key: str) -> str:
    """`users:#25` (the 25th record, named by its place) -> `users:25` (its id)."""
    table, _, rest = key.partition(":")
    if rest.startswith("#"):
        return f"{table}:{good_tables()[table][int(rest[1:]) - 1]['id']}"
    return key


def _faces(*names: str) -> frozenset[str]:
    return frozenset(names)


def truncations() -> Iterator[Case]:
    """A good file cut short at many offsets, plain and gzip, in both layouts."""
    lines = good_lines()
    first_nl = lines.index(b"\n")
    users_at = lines.index(b'"users":[')
    record_end = lines.index(b"},\n", users_at) + 3
    orders_at = lines.index(b'"orders":[')
    closing = lines.rindex(b"}")
    marks = {
        "in-prefix": 5,
        "in-metadata": first_nl // 2,
        "metadata-unclosed": first_nl - 2,
        "after-metadata": first_nl + 1,
        "in-table-name": users_at + 3,
        "after-table-start": users_at + 10,
        "in-first-record": users_at + 40,
        "at-record-end": record_end,
        "in-record": record_end + 17,
        "mid-users": (users_at + orders_at) // 2,
        "before-users-close": orders_at - 4,
        "after-users-close": orders_at - 2,
        "in-orders-name": orders_at + 4,
        "mid-orders": (orders_at + closing) // 2,
        "before-orders-close": closing - 2,
        "before-closing-brace": closing,
    }
    in_record = ("truncated", "line", "table '")
    places = {
        "in-prefix": ("truncated", "after 5 bytes"),
        "in-metadata": ("truncated", "in the metadata"),
        "metadata-unclosed": ("truncated", "in the metadata"),
        "after-metadata": ("truncated", "closing '}'"),
        "in-table-name": ("truncated", "line"),
        "after-table-start": ("truncated", "table 'users'"),
        "in-first-record": in_record,
        "at-record-end": ("truncated", "table 'users'"),
        "in-record": in_record,
        "mid-users": in_record,
        "before-users-close": in_record,
        "after-users-close": ("truncated", "closing '}'"),
        "in-orders-name": ("truncated", "line"),
        "mid-orders": in_record,
        "before-orders-close": ("truncated", "table 'orders'"),
        "before-closing-brace": ("truncated", "closing '}'"),
    }
    for label, at in marks.items():
        place = places[label]
        faces = _faces("cli") if label == "mid-users" else frozenset()
        yield Case(
            f"truncated-lines-{at:05d}-{label}.json",
            "refused",
            f"rowvault's line layout cut at byte {at} ({label.replace('-', ' ')})",
            lambda at=at: lines[:at],
            place,
            faces=faces,
        )
    packed = gz(lines)
    for at in (1, 5, 10, 40, len(packed) // 3, len(packed) // 2, len(packed) - 9, len(packed) - 4):
        place = () if at < 2 else ("truncated", f"at byte {at:,}")
        yield Case(
            f"truncated-gzip-{at:05d}.json.gz",
            "refused",
            f"the gzip of a good file cut at byte {at} of {len(packed)}"
            + (
                " (inside the gzip trailer: every record is there, the CRC is not)"
                if at > len(packed) - 9
                else ""
            ),
            lambda at=at: packed[:at],
            place,
            faces=_faces("cli", "async") if at == len(packed) // 2 else frozenset(),
        )
    pretty = good_pretty()
    for at in (1, 30, 200, len(pretty) // 3, len(pretty) // 2, len(pretty) - 30, len(pretty) - 3):
        yield Case(
            f"truncated-pretty-{at:05d}.json",
            "refused",
            f"a pretty-printed backup cut at byte {at} of {len(pretty)}",
            lambda at=at: pretty[:at],
            ("truncated", f"after {at:,} bytes"),
            faces=_faces("cli") if at == len(pretty) // 2 else frozenset(),
        )
    packed_pretty = gz(pretty)
    for at in (len(packed_pretty) // 2, len(packed_pretty) - 5):
        yield Case(
            f"truncated-pretty-gzip-{at:05d}.json.gz",
            "refused",
            f"the gzip of a pretty-printed backup cut at byte {at} of {len(packed_pretty)}",
            lambda at=at: packed_pretty[:at],
            ("truncated", f"at byte {at:,}"),
        )


def _with_user(change: Callable[[Record], Any], user: int = LEAF) -> Tables:
    tables = good_tables()
    change(tables["users"][user - 1])
    return tables


def _raw_user(line: bytes, user: int = LEAF) -> Tables:
    tables: Any = good_tables()
    tables["users"][user - 1] = line
    return tables


def _children(user: int) -> frozenset[str]:
    return frozenset(f"orders:{o['id']}" for o in ORDERS if o["user_id"] == user)


def encodings() -> Iterator[Case]:
    """Bytes that are not UTF-8, lone surrogates, control characters, a byte order mark."""
    bad_name = b'{"id":25,"email":"user25@example.com","name":"Us\xff\xfer","score":25.5}'
    yield Case(
        "invalid-utf8-record.json",
        "partial",
        "one record holds bytes that are not UTF-8",
        lambda: lines_file(_raw_user(bad_name)),
        bad=frozenset({"users:#25"}),
        faces=_faces("cli", "engines"),
    )
    parent = b'{"id":5,"email":"user5@example.com","name":"Us\xc3\x28er","score":5.5}'
    yield Case(
        "invalid-utf8-parent.json",
        "partial",
        "a record that is not UTF-8 has children: they are reported too",
        lambda: lines_file(_raw_user(parent, 5)),
        bad=frozenset({"users:#5"}) | _children(5),
    )
    yield Case(
        "invalid-utf8-metadata.json",
        "refused",
        "the metadata line holds bytes that are not UTF-8",
        lambda: good_lines().replace(b'"generator":"rowvault corpus"', b'"generator":"row\xffvault"', 1),
        ("UTF-8",),
    )
    yield Case(
        "invalid-utf8-table-name.json",
        "refused",
        "a table's name is not UTF-8",
        lambda: good_lines().replace(b'"orders":[', b'"ord\xffers":[', 1),
        ("line",),
    )
    yield Case(
        "invalid-utf8-pretty.json",
        "refused",
        "a pretty-printed file with bytes that are not UTF-8 in a record",
        lambda: good_pretty().replace(b'"User 25"', b'"User \xff25"', 1),
        ("UTF-8",),
    )
    surrogate = b'{"id":25,"email":"user25@example.com","name":"\\ud800","score":25.5}'
    yield Case(
        "lone-surrogate.json",
        "partial",
        "a string escapes half a surrogate pair (\\ud800)",
        lambda: lines_file(_raw_user(surrogate)),
        bad=frozenset({"users:#25"}),
    )

    def pretty_surrogate() -> bytes:
        text = good_pretty().replace(b'"User 25"', b'"\\ud800"', 1)
        return text

    yield Case(
        "lone-surrogate-pretty.json",
        "refused",
        "a pretty-printed file whose string escapes half a surrogate pair (the parser would read '?')",
        pretty_surrogate,
        ("table 'users'", "record #25", "surrogate"),
    )
    yield Case(
        "lone-low-surrogate-pretty.json",
        "refused",
        "a pretty-printed file whose string escapes a low surrogate alone (\\udc00)",
        lambda: good_pretty().replace(b'"User 25"', b'"\\udc00"', 1),
        ("table 'users'", "record #25", "surrogate"),
    )
    control = b'{"id":25,"email":"user25@example.com","name":"a\x00b\x07c","score":25.5}'
    yield Case(
        "raw-control-characters.json",
        "partial",
        "a string holds raw NUL and BEL bytes (JSON needs them escaped)",
        lambda: lines_file(_raw_user(control)),
        bad=frozenset({"users:#25"}),
    )
    yield Case(
        "utf8-bom.json",
        "partial",
        "a good file behind a UTF-8 byte order mark restores whole",
        lambda: b"\xef\xbb\xbf" + good_lines(),
    )
    yield Case(
        "crlf-line-ends.json",
        "partial",
        "a good file with CRLF line ends restores whole",
        lambda: good_lines().replace(b"\n", b"\r\n"),
    )


def duplicates() -> Iterator[Case]:
    dup = b'{"id":25,"id":26,"email":"user25@example.com","name":"User 25","score":25.5}'
    yield Case(
        "duplicate-key-record.json",
        "partial",
        'a record names "id" twice',
        lambda: lines_file(_raw_user(dup)),
        bad=frozenset({"users:#25"}),
        faces=_faces("cli", "engines"),
    )

    def pretty_dup() -> bytes:
        return good_pretty().replace(b'"name": "User 25"', b'"name": "User 25",\n      "name": "Mallory"', 1)

    yield Case(
        "duplicate-key-pretty.json",
        "refused",
        'a pretty-printed record names "name" twice',
        pretty_dup,
        ("table 'users'", "record #25", "'name'"),
    )

    def twice() -> bytes:
        tables = good_tables()
        data = lines_file(tables)
        users = data[data.index(b',\n"users":[') : data.index(b',\n"orders":[')]
        return data.replace(b"\n}\n", users + b"\n}\n")

    yield Case(
        "duplicate-table.json",
        "refused",
        "the users table appears twice",
        twice,
        ("'users'", "appears twice", "line"),
    )

    def pretty_twice() -> bytes:
        text = good_pretty()
        return text[: text.rindex(b"}")].rstrip() + b',\n  "orders": []\n}\n'

    yield Case(
        "duplicate-table-pretty.json",
        "refused",
        "a pretty-printed file lists the orders table twice",
        pretty_twice,
        ("'orders'", "appears twice"),
    )


def columns() -> Iterator[Case]:
    def described_extra() -> bytes:
        tables = _with_user(lambda r: r.update(shoe_size=44))
        meta = metadata_for(tables)
        meta["tables"]["users"]["columns"].append({"name": "shoe_size", "type": "integer", "nullable": True})
        return lines_file(tables, meta)

    yield Case(
        "extra-column-described.json",
        "refused",
        "the metadata describes a column the target lacks",
        described_extra,
        ("'users'", "'shoe_size'"),
        faces=_faces("cli"),
    )
    yield Case(
        "extra-column-one-record.json",
        "partial",
        "one record has a key no column is described for",
        lambda: lines_file(_with_user(lambda r: r.update(shoe_size=44))),
        bad=frozenset({f"users:{LEAF}"}),
    )

    def pretty_extra() -> bytes:
        tables = _with_user(lambda r: r.update(shoe_size=44))
        return pretty_file(tables)

    yield Case(
        "extra-column-pretty.json",
        "refused",
        "a file without metadata whose record has a key the target lacks",
        pretty_extra,
        ("'users'", "'shoe_size'"),
    )
    yield Case(
        "missing-required-column.json",
        "partial",
        "a record lacks a NOT NULL column",
        lambda: lines_file(_with_user(lambda r: r.pop("name"))),
        bad=frozenset({f"users:{LEAF}"}),
    )

    def lacks_score() -> Tables:
        return _with_user(lambda r: r.pop("score"))

    good = lacks_score()
    good["users"][LEAF - 1]["score"] = None
    yield Case(
        "missing-nullable-column.json",
        "partial",
        "a record lacks a nullable column: it is written with NULL",
        lambda: lines_file(lacks_score()),
        good=good,
    )
    yield Case(
        "missing-key-column.json",
        "partial",
        "a record lacks its primary key",
        lambda: lines_file(_with_user(lambda r: r.pop("id"))),
        bad=frozenset({f"users:#{LEAF}"}),
    )

    def short_description() -> bytes:
        tables = good_tables()
        meta = metadata_for(tables)
        meta["tables"]["users"]["columns"] = [
            c for c in meta["tables"]["users"]["columns"] if c["name"] != "score"
        ]
        return lines_file(tables, meta)

    yield Case(
        "metadata-lacks-a-column.json",
        "partial",
        "the metadata leaves out a column every record has",
        short_description,
        bad=frozenset(f"users:{u['id']}" for u in USERS) | frozenset(f"orders:{o['id']}" for o in ORDERS),
    )


def shapes() -> Iterator[Case]:
    """Top levels that are not a backup object, tables and records of the wrong kind."""
    yield Case(
        "top-level-array.json", "refused", "a JSON array", lambda: pretty_file(USERS), ("a JSON array",)
    )
    yield Case(
        "top-level-string.json", "refused", "a JSON string", lambda: b'"users"\n', ("not a rowvault or JSON",)
    )
    yield Case(
        "top-level-number.json", "refused", "a JSON number", lambda: b"42\n", ("not a rowvault or JSON",)
    )
    yield Case("top-level-null.json", "refused", "JSON null", lambda: b"null\n", ("not a rowvault or JSON",))
    yield Case("empty.json", "refused", "an empty file", lambda: b"", ("empty",))
    yield Case("whitespace.json", "refused", "only blank lines", lambda: b"\n \n\t\n", ("empty",))
    yield Case(
        "empty-gzip.json.gz",
        "refused",
        "the gzip of nothing",
        lambda: gz(b""),
        ("empty",),
    )
    yield Case(
        "table-is-object.json",
        "refused",
        "a table holds an object, not an array",
        lambda: pretty_file({"users": USERS[0]}),
        ("'users'", "not an array of records"),
    )
    yield Case(
        "table-is-string-lines.json",
        "refused",
        "rowvault's layout with a table line that is not an array",
        lambda: good_lines().replace(b'"orders":[', b'"orders":"none",', 1),
        ("line",),
    )
    yield Case(
        "record-is-array.json",
        "refused",
        "a record is an array",
        lambda: pretty_file({"users": [[1, "a@example.com"]]}),
        ("'users'", "record #1"),
    )
    yield Case(
        "record-is-number-lines.json",
        "refused",
        "rowvault's layout with a record line that is a number",
        lambda: lines_file(_raw_user(b"25")),
        ("'users'", "line"),
        faces=_faces("cli"),
    )
    yield Case(
        "record-is-null-pretty.json",
        "refused",
        "a record is null",
        lambda: pretty_file({"users": [USERS[0], None]}),
        ("'users'", "record #2"),
    )
    yield Case(
        "metadata-is-array.json",
        "partial",
        "a metadata that is not an object is left aside; the records restore",
        lambda: pretty_file({"metadata": [1, 2], **good_tables()}),
    )
    yield Case(
        "metadata-tables-is-list.json",
        "refused",
        "the metadata's tables is a list",
        lambda: lines_file(good_tables(), {"format": "rowvault", "version": 1, "tables": [1, 2]}),
        ("tables",),
    )

    def description_of_strings() -> bytes:
        meta = metadata_for(good_tables())
        meta["tables"]["users"] = {"count": 30, "columns": "id,email,name", "primaryKey": "id"}
        return lines_file(good_tables(), meta)

    yield Case(
        "metadata-columns-is-string.json",
        "refused",
        "a table's columns are described by a string",
        description_of_strings,
        ("'users'",),
    )

    def description_of_numbers() -> bytes:
        meta = metadata_for(good_tables())
        meta["tables"]["users"]["columns"] = [1, 2, 3, 4, 5, 6]
        return lines_file(good_tables(), meta)

    yield Case(
        "metadata-columns-are-numbers.json",
        "refused",
        "a table's columns are described by numbers",
        description_of_numbers,
        ("'users'",),
    )

    def description_is_string() -> bytes:
        meta = metadata_for(good_tables())
        meta["tables"]["users"] = "thirty users"
        return lines_file(good_tables(), meta)

    yield Case(
        "metadata-description-is-string.json",
        "refused",
        "a table's description is a string",
        description_is_string,
        ("'users'",),
    )
    yield Case(
        "empty-object.json",
        "partial",
        "{}: a backup of no tables changes nothing",
        lambda: b"{}\n",
        good={},
    )
    yield Case(
        "trailing-data-lines.json",
        "refused",
        "more data after the closing brace",
        lambda: good_lines() + b'{"users":[]}\n',
        ("after the end", "line"),
    )
    yield Case(
        "trailing-data-pretty.json",
        "refused",
        "a pretty-printed file with more data after its end",
        lambda: good_pretty() + b"[1]\n",
        ("not valid JSON",),
    )
    yield Case(
        "future-version.json",
        "refused",
        "written by a format version from the future",
        lambda: lines_file(good_tables(), metadata_for(good_tables(), version=999)),
        ("version 999",),
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def nesting() -> Iterator[Case]:
    """JSON nested 100,000 deep: in a JSON column, as a record, in the metadata."""
    deep = 100_000

    def in_column_lines() -> bytes:
        line = (
            b'{"id":25,"email":"user25@example.com","name":"User 25","profile":'
            + nested(deep).encode()
            + b"}"
        )
        return lines_file(_raw_user(line))

    yield Case(
        "deep-json-column.json",
        "partial",
        "a JSON column nested 100,000 deep",
        in_column_lines,
        bad=frozenset({"users:#25"}),
        faces=_faces("cli", "engines", "async"),
    )

    def in_column_pretty() -> bytes:
        tables = _with_user(lambda r: r.update(profile="@deep@"))
        text = pretty_file({"metadata": metadata_for(tables), **tables})
        return text.replace(b'"@deep@"', nested(deep).encode(), 1)

    yield Case(
        "deep-json-column-pretty.json",
        "refused",
        "a JSON column nested 100,000 deep in a pretty-printed file (its parser builds records whole)",
        in_column_pretty,
        ("table 'users'", "record #25", "1,024 deep"),
    )

    def in_column_300() -> bytes:
        line = (
            b'{"id":25,"email":"user25@example.com","name":"User 25","profile":' + nested(300).encode() + b"}"
        )
        return lines_file(_raw_user(line))

    def deep_300() -> Any:
        value: Any = []
        for _ in range(299):
            value = [value]
        return value

    yield Case(
        "deep-json-column-300.json",
        "partial",
        "a JSON column nested 300 deep: past orjson's writing limit (255), kept whole",
        in_column_300,
        good=_with_user(lambda r: r.update(profile=deep_300(), score=None, created_at=None)),
    )
    yield Case(
        "deep-record.json",
        "refused",
        "a record that is an array nested 100,000 deep",
        lambda: b'{"users":[' + nested(deep).encode() + b"]}\n",
        ("'users'", "record #1"),
    )

    def deep_metadata() -> bytes:
        tables = good_tables()
        body = pretty_file({"metadata": {"format": "rowvault", "version": 1, "note": 0}, **tables})
        return body.replace(b'"note": 0', b'"note": ' + nested(deep).encode(), 1)

    yield Case(
        "deep-metadata.json",
        "refused",
        "a metadata nested 100,000 deep",
        deep_metadata,
        ("metadata",),
        faces=_faces("cli", "async"),
    )


def big_values() -> Iterator[Case]:
    """A 50 MB string, integers past 64 bits, NaN and Infinity."""
    size = 50 * MiB

    def big_note() -> Tables:
        tables = good_tables()
        tables["orders"][-1]["note"] = "x" * size
        return tables

    yield Case(
        "big-string-50mb.json.gz",
        "partial",
        "a record holding a 50 MB string restores",
        lambda: gz(lines_file(big_note())),
        good=big_note(),
        faces=_faces("cli"),
        big=True,
    )
    yield Case(
        "big-column-name.json",
        "partial",
        "a record with a key of 1 MB (no such column)",
        lambda: lines_file(_with_user(lambda r: r.update({"k" * MiB: 1}))),
        bad=frozenset({f"users:{LEAF}"}),
        big=True,
    )
    huge = 123456789012345678901234567890
    yield Case(
        "bigint-integer-column.json",
        "partial",
        "an integer past 64 bits in an INTEGER column",
        lambda: lines_file(_with_user(lambda r: r.update(id=huge))),
        bad=frozenset({f"users:{huge}"}),
        lost=frozenset({f"users:{LEAF}"}),
        faces=_faces("cli", "engines"),
    )
    yield Case(
        "bigint-key-of-parent.json",
        "partial",
        "an order refers to a user by an integer past 64 bits",
        lambda: lines_file(_orders_changed(40, user_id=2**64)),
        bad=frozenset({"orders:40"}),
    )

    def json_digits() -> Tables:
        return _with_user(lambda r: r.update(profile={"n": huge}))

    yield Case(
        "bigint-json-column.json",
        "partial",
        "an integer past 64 bits in a JSON column keeps every digit",
        lambda: lines_file(json_digits()),
        good=json_digits(),
    )
    yield Case(
        "bigint-text-column.json",
        "partial",
        "an integer past 64 bits in a TEXT column keeps every digit (as text)",
        lambda: lines_file(_orders_changed(40, note=huge)),
        good=_orders_changed(40, note=str(huge)),
    )
    yield Case(
        "bigint-decimal-column.json",
        "partial",
        "an integer past 64 bits in a NUMERIC(12, 2) column",
        lambda: lines_file(_orders_changed(40, total=huge)),
        bad=frozenset({"orders:40"}),
    )
    yield Case(
        "bigint-json-column-pretty.json",
        "refused",
        "an integer past 64 bits in a pretty-printed file (its parser reads 64 bits at most)",
        lambda: pretty_file(json_digits()),
        ("table 'users'", "record #25", "64 bits"),
    )

    def bare(word: str) -> bytes:
        line = b'{"id":25,"email":"user25@example.com","name":"User 25","score":' + word.encode() + b"}"
        return lines_file(_raw_user(line))

    for word in ("NaN", "Infinity", "-Infinity", "1e400"):
        yield Case(
            f"bare-{word.lower().lstrip('-')}{'-negative' if word.startswith('-') else ''}.json",
            "partial",
            f"a bare {word} (not JSON) in a REAL column",
            lambda word=word: bare(word),
            bad=frozenset({"users:#25"}),
        )
    yield Case(
        "nan-as-text.json",
        "partial",
        '"NaN" as text in a REAL column: SQLite would store NULL, so a record error',
        lambda: lines_file(_with_user(lambda r: r.update(score="NaN"))),
        bad=frozenset({f"users:{LEAF}"}),
    )
    good = _with_user(lambda r: r.update(score=float("inf")))
    yield Case(
        "infinity-as-text.json",
        "partial",
        '"Infinity" as text in a REAL column: SQLite keeps it',
        lambda: lines_file(_with_user(lambda r: r.update(score="Infinity"))),
        good=good,
    )
    yield Case(
        "nan-pretty.json",
        "refused",
        "a bare NaN in a pretty-printed file",
        lambda: good_pretty().replace(b'"score": 25.5', b'"score": NaN', 1),
        ("not valid JSON",),
    )


def _members_tables() -> Tables:
    tables = good_tables()
    tables["orders"][-1]["note"] = "y" * (3 * MiB)
    return tables


def _orders_changed(order: int, **values: Any) -> Tables:
    tables = good_tables()
    tables["orders"][order - 1].update(values)
    return tables


def bombs() -> Iterator[Case]:
    """Files that expand far past their size, and archives that are not gzip."""
    meta_line = b'{"metadata":' + dumps(metadata_for({"users": [None]})) + b",\n"
    spaces = b" " * MiB
    yield Case(
        "gzip-bomb-spaces.json.gz",
        "refused",
        "1 MB of gzip holding a metadata line and 1 GiB of spaces",
        lambda: gz(meta_line) + gz_member_repeated(spaces, 1024),
        ("line 2",),
        api_place=("refused as a compression bomb", "MiB"),
        faces=_faces("cli", "async"),
    )
    record = b'{"id":1,"email":"a@example.com","name":"a"},\n' * (MiB // 48)
    yield Case(
        "gzip-bomb-records.json.gz",
        "refused",
        "a metadata line saying 1 record, then 256 MiB of copies of it",
        lambda: (
            gz(meta_line + b'"users":[\n')
            + gz_member_repeated(record, 256)
            + gz(b'{"id":1,"email":"a@example.com","name":"a"}\n]\n}\n')
        ),
        ("table 'users'", "holds 5,592,321"),
        api_place=("refused as a compression bomb", "MiB"),
    )
    yield Case(
        "gzip-bomb-pretty.json.gz",
        "refused",
        "1 MB of gzip holding an object and 1 GiB of spaces",
        lambda: gz(b'{"users": [') + gz_member_repeated(spaces, 1024),
        ("64 MiB",),
        api_place=("refused as a compression bomb", "MiB"),
    )

    def zipped() -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo("backup.json", date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, good_lines())
        return out.getvalue()

    yield Case(
        "zip-renamed.json.gz",
        "refused",
        "a ZIP archive named .json.gz",
        zipped,
        ("a ZIP archive",),
        faces=_faces("cli"),
    )
    yield Case(
        "gzip-of-zip.json.gz",
        "refused",
        "gzip holding a ZIP archive",
        lambda: gz(zipped()),
        ("a ZIP archive",),
    )
    yield Case(
        "gzip-trailing-garbage.json.gz",
        "refused",
        "a good gzip followed by bytes that are not gzip",
        lambda: gz(good_lines()) + b"this is not gzip",
        ("gzip",),
    )

    def in_members() -> bytes:
        data = lines_file(_members_tables())
        step = 1_500_000
        return b"".join(gz(data[at : at + step]) for at in range(0, len(data), step))

    yield Case(
        "gzip-members.json.gz",
        "partial",
        "a good file as gzip members cut mid-record (as `cat a.gz b.gz` or pigz write), with a 3 MB note",
        in_members,
        good=_members_tables(),
        faces=_faces("cli", "async"),
    )

    def flipped() -> bytes:
        data = bytearray(gz(good_lines()))
        data[len(data) // 2] ^= 0xFF
        return bytes(data)

    yield Case("gzip-flipped-byte.json.gz", "refused", "one byte of the gzip flipped", flipped, ("gzip",))

    def bad_crc() -> bytes:
        data = bytearray(gz(good_lines()))
        data[-8] ^= 0x01
        return bytes(data)

    yield Case(
        "gzip-bad-crc.json.gz",
        "refused",
        "the gzip's CRC does not match its data (every record is readable)",
        bad_crc,
        ("gzip",),
    )


def counts() -> Iterator[Case]:
    """Metadata counts that disagree with the records."""

    def counted(users: Any) -> bytes:
        tables = good_tables()
        meta = metadata_for(tables)
        meta["tables"]["users"]["count"] = users
        return lines_file(tables, meta)

    for label, value in (("high", 31), ("low", 29), ("zero", 0), ("negative", -1), ("huge", 10**30)):
        yield Case(
            f"count-{label}.json",
            "refused",
            f"the metadata says {value} users; the file holds 30",
            lambda value=value: counted(value),
            ("table 'users'", "count" if label == "huge" else f"says {value}"),
            faces=_faces("cli", "engines") if label == "high" else frozenset(),
        )
    yield Case(
        "count-is-text.json",
        "refused",
        'the metadata\'s count is text ("30")',
        lambda: counted("30"),
        ("table 'users'", "count '30'"),
    )

    def absent() -> bytes:
        tables = good_tables()
        meta = metadata_for({**tables, "payments": [None] * 5})
        return lines_file(tables, meta)

    yield Case(
        "count-for-absent-table.json",
        "refused",
        "the metadata lists 5 payments; the file has no payments table",
        absent,
        ("table 'payments'", "5 records"),
    )

    def pretty_lie() -> bytes:
        tables = good_tables()
        meta = metadata_for(tables)
        meta["tables"]["orders"]["count"] = 400
        return pretty_file({"metadata": meta, **tables})

    yield Case(
        "count-high-pretty.json",
        "refused",
        "a pretty-printed file whose metadata says 400 orders",
        pretty_lie,
        ("table 'orders'", "says 400"),
    )


SQL_TABLE = "users; DROP TABLE users; --"
SQL_COLUMN = 'name"; DROP TABLE orders; --'


def sql_names() -> Iterator[Case]:
    """Names that look like SQL: they are data, never statements."""

    def sql_table() -> Tables:
        return {SQL_TABLE: [{"id": 1, "note": "Robert'); DROP TABLE users; --"}]}

    def sql_table_file() -> bytes:
        meta = metadata_for(sql_table())
        meta["tables"][SQL_TABLE].update(
            columns=[
                {"name": "id", "type": "integer", "sqlType": "INTEGER", "nullable": False},
                {"name": "note", "type": "string", "sqlType": "TEXT", "nullable": True},
            ],
            primaryKey=["id"],
        )
        return lines_file(sql_table(), meta)

    yield Case(
        "sql-table-name.json",
        "partial",
        "a described table named like SQL is created under that very name",
        sql_table_file,
        good=sql_table(),
        faces=_faces("cli", "engines"),
    )

    def sql_column() -> bytes:
        tables = _with_user(lambda r: r.update({SQL_COLUMN: "x"}))
        meta = metadata_for(tables)
        meta["tables"]["users"]["columns"].append({"name": SQL_COLUMN, "type": "string", "nullable": True})
        return lines_file(tables, meta)

    yield Case(
        "sql-column-name.json",
        "refused",
        "a described column named like SQL that the target lacks",
        sql_column,
        ("'users'", "DROP TABLE orders"),
    )
    yield Case(
        "sql-table-name-undescribed.json",
        "refused",
        "an undescribed table named like SQL (cannot be created)",
        lambda: pretty_file({"orders; DELETE FROM users": [{"id": 1}]}),
        ("DELETE FROM users", "does not exist"),
    )
    values = _with_user(lambda r: r.update(name="Robert'); DROP TABLE users; --"))
    yield Case(
        "sql-in-values.json",
        "partial",
        "values that look like SQL are stored as they are",
        lambda: lines_file(values),
        good=values,
    )


def collisions() -> Iterator[Case]:
    """Names that meet after camelCase -> snake_case matching."""
    accounts = [{"id": 2, "login": "ada", "created_at": "2024-02-01T00:00:00"}]

    def both_columns() -> bytes:
        records = [{**accounts[0], "createdAt": "2024-02-02T00:00:00"}]
        return pretty_file({"user_accounts": records})

    yield Case(
        "collide-columns.json",
        "refused",
        "a record holds createdAt and created_at",
        both_columns,
        ("'user_accounts'", "'createdAt'", "'created_at'"),
        faces=_faces("cli"),
    )

    def both_columns_described() -> bytes:
        records = [{**accounts[0], "createdAt": "2024-02-02T00:00:00"}]
        meta = metadata_for({"user_accounts": records})
        meta["tables"]["user_accounts"]["columns"] = [
            {"name": n, "type": t, "nullable": True}
            for n, t in (
                ("id", "integer"),
                ("login", "string"),
                ("created_at", "datetime"),
                ("createdAt", "datetime"),
            )
        ]
        return lines_file({"user_accounts": records}, meta)

    yield Case(
        "collide-columns-described.json",
        "refused",
        "the metadata describes createdAt and created_at",
        both_columns_described,
        ("'user_accounts'", "'createdAt'", "'created_at'"),
    )
    yield Case(
        "collide-tables.json",
        "refused",
        "the file holds orders and Orders",
        lambda: pretty_file({"orders": ORDERS[:1], "Orders": ORDERS[1:2]}),
        ("'Orders'", "'orders'", "both match"),
    )
    yield Case(
        "collide-target-tables.json",
        "refused",
        "UserAccounts matches both user_accounts and useraccounts in the target",
        lambda: pretty_file({"UserAccounts": [{"id": 3, "login": "bo"}]}),
        ("'UserAccounts'", "'user_accounts'", "'useraccounts'"),
    )
    camel = {**USERS[LEAF - 1]}
    camel["createdAt"] = camel.pop("created_at")
    yield Case(
        "camel-case-names.json",
        "partial",
        "a record's createdAt restores into users.created_at (the control)",
        lambda: pretty_file({"metadata": {"version": "1.0"}, "users": [camel]}),
        good={"users": [USERS[LEAF - 1]]},
    )


FAMILIES = (
    truncations,
    encodings,
    duplicates,
    columns,
    shapes,
    nesting,
    big_values,
    bombs,
    counts,
    sql_names,
    collisions,
)


def cases() -> list[Case]:
    """Every case, without writing anything."""
    found = [case for family in FAMILIES for case in family()]
    names = [c.file for c in found]
    assert len(names) == len(set(names)), "two cases share a file name"
    return found


def good_file(records: int = 20_000) -> bytes:
    """A good backup of `records` users in the line layout, gzip: the normal restore
    whose memory the corpus is measured against."""
    users = [
        {
            "id": i,
            "email": f"user{i}@example.com",
            "name": f"User {i}",
            "score": i + 0.5,
            "profile": {"tags": ["a", "b"], "level": i % 5},
            "created_at": "2024-01-01T10:00:00",
        }
        for i in range(10, records + 10)
    ]
    return gz(lines_file({"users": users}))


def build(outdir: Path, *, only: Iterable[str] | None = None) -> list[Case]:
    """Write the corpus (or the cases named in `only`) and its manifest into `outdir`."""
    outdir.mkdir(parents=True, exist_ok=True)
    wanted = set(only) if only is not None else None
    written = []
    for case in cases():
        if wanted is not None and case.file not in wanted:
            continue
        (outdir / case.file).write_bytes(case.make())
        written.append(case)
    manifest = [
        {
            "file": c.file,
            "outcome": c.outcome,
            "about": c.about,
            "place": list(c.place),
            "bad": sorted(c.bad),
            "faces": sorted(c.faces),
        }
        for c in written
    ]
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/corpus/make_corpus.py OUTDIR", file=sys.stderr)
        return 2
    written = build(Path(argv[1]))
    refused = sum(c.outcome == "refused" for c in written)
    print(f"{len(written)} files in {argv[1]}: {refused} refused, {len(written) - refused} partial")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
