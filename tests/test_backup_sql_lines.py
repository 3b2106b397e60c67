"""PostgreSQL and MariaDB build each record's line in SQL and write the same bytes as the row
path (issue 10 item 4, `dialects/postgresql_dump.py`, `dialects/mysql_dump.py`).

Every awkward value of every column type those paths know sits in a table of its own (a line
built in SQL next to lines the row path encodes) and in one wide table; each backup is
compared byte for byte with `backup(..., _row_path=True)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rowvault.backup import backup as run_backup
from rowvault.demo import build_demo

from .test_backup_fast import CREATED, assert_same_file

HOSTILE_TEXT = [
    "''",
    "'abc'",
    "E'\\x01\\x08\\x09\\x0a\\x0b\\x0c\\x0d\\x1f\\x7f'",
    "E'\\u2028 \\u2029 \\ufeff ü🦉'",
    "E'\"q\" \\\\ / \\\\u0000 null [ {'",
    "'null'",
    "repeat('ab', 5000)",
]
HOSTILE_DOCS = [
    '{"a": [1, 2.5, "ü"], "b": {"c": null}}',
    '{"a":1,"a":2}',
    '{"a": {"x": 1, "x": 2}, "b": 3}',
    '  { "a" : 1 ,"b":[ true,false ] }  ',
    '{"n": 12345678901234567890123}',
    '{"n": 123456789012345678}',
    '{"f": 1.50, "e": 1e5, "z": -0, "m": -1}',
    "[1e400]",
    '{"$stored": 1}',
    '{"$base64": "AA=="}',
    '"text"',
    "null",
    "[]",
    "{}",
    '{"s": "\\u00fc \\ud83e\\udd89 \\n \\u001f \\" \\\\ \\/"}',
    '{"k:,": "a, b: c"}',
    '{"t": "2024-01-02", "u": "\\u2028"}',
    "[" * 200 + "]" * 200,
]
PG_VALUES: dict[str, list[str]] = {
    "bigint": ["0", "-9223372036854775808", "9223372036854775807"],
    "integer": ["-2147483648", "7"],
    "smallint": ["-32768", "32767"],
    "text": HOSTILE_TEXT,
    "varchar(20)": ["'ü'", "E'a\\tb'"],
    "char(5)": ["'ab'", "'ü'"],
    "boolean": ["true", "false"],
    "date": ["'2024-02-29'", "'0001-01-01'", "'9999-12-31'", "'0999-05-06'"],
    "timestamp": [
        "'2024-01-02 03:04:05'",
        "'2024-01-02 03:04:05.5'",
        "'2024-01-02 03:04:05.000001'",
        "'0001-01-01 00:00:00'",
        "'9999-12-31 23:59:59.999999'",
    ],
    "timestamptz": [
        "'2024-01-02 03:04:05+05:30'",
        "'2024-01-02 03:04:05.120000+00'",
        "'0001-01-01 00:00:00+00'",
        "'9999-12-31 23:59:59.999999+00'",
    ],
    "time": ["'00:00:00'", "'23:59:59.999999'", "'12:30:00.5'", "'07:45:00.01'"],
    "numeric": [
        "0",
        "'0.0000000'",
        "'0.000000'",
        "'1e-7'",
        "'0.000001'",
        "'-0.0000019'",
        "'123.4500'",
        "'-0.5'",
        "'NaN'",
        "'Infinity'",
        "'-Infinity'",
        "'1e30'",
        "'12345678901234567890.123'",
    ],
    "numeric(10, 2)": ["0", "'12.50'", "'-99999999.99'"],
    "real": [
        "0",
        "'-0'",
        "0.1",
        "1e-5",
        "0.0001",
        "999999",
        "1e6",
        "123456.7",
        "3.4e38",
        "'NaN'",
        "'-Infinity'",
        "1.17549435e-38",
    ],
    "double precision": [
        "0",
        "'-0'",
        "0.1",
        "1e-4",
        "9.99e-5",
        "1e15",
        "999999999999999.9",
        "99999999999999.98",
        "1e16",
        "5e-324",
        "1.7976931348623157e308",
        "'NaN'",
        "'Infinity'",
        "0.30000000000000004",
        "-123.456",
    ],
    "json": [f"'{d}'" for d in HOSTILE_DOCS] + ['\'{"z": "\\u0000"}\''],
    "jsonb": [f"'{d}'" for d in HOSTILE_DOCS if "ud83e" not in d],
    "uuid": ["'00000000-0000-0000-0000-000000000000'", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'"],
    "bytea": ["''", "'\\x00ff'", "decode(repeat('ff00', 300), 'hex')"],
    "interval": ["'1 year 2 mons'", "'-1 days +02:00'", "'00:00:00.000001'", "'0'"],
    "int[]": ["'{1,2}'"],
    "timetz": ["'12:00:00+02'"],
}


def _fill(url: str, values: dict[str, list[str]], quote: str = '"') -> None:
    """A table per type (id, v) holding its values and a NULL, and one wide table with a
    column per type, row n holding value n of each type (NULL past its last)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for i, (sql_type, literals) in enumerate(values.items()):
            conn.exec_driver_sql(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v {sql_type})")
            rows = ", ".join(f"({n}, {v})" for n, v in enumerate(literals))
            conn.exec_driver_sql(f"INSERT INTO t{i} VALUES {rows}, ({len(literals)}, NULL)")
        cols = ", ".join(f"{quote}c {t}{quote} {t}" for t in values)
        conn.exec_driver_sql(f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {cols})")
        for n in range(max(map(len, values.values()))):
            row = ", ".join(v[n] if n < len(v) else "NULL" for v in values.values())
            conn.exec_driver_sql(f"INSERT INTO wide VALUES ({n}, {row})")
    engine.dispose()


def _known(values: dict[str, list[str]], unknown: tuple[str, ...]) -> dict[str, list[str]]:
    return {t: v for t, v in values.items() if t not in unknown}


def test_every_awkward_postgresql_value_is_written_as_the_row_path_does(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgresql")
    _fill(db, PG_VALUES)

    data = assert_same_file(db, tmp_path)
    assert data.count(b'"$stored"') >= 6  # the JSON misfits are there, marked
    assert b'"NaN"' in data and b'"-Infinity"' in data


def test_postgresql_tables_of_only_known_types_back_up_to_the_same_bytes_in_one_wide_table(
    make_db: Any, tmp_path: Path
) -> None:
    db = make_db("postgresql")
    _fill(db, _known(PG_VALUES, ("int[]", "timetz")))  # those send a table to the row path whole
    assert_same_file(db, tmp_path, ".json")


@pytest.mark.parametrize(
    ("sql_type", "literal"),
    [
        ("date", "'0001-01-01 BC'"),
        ("date", "'infinity'"),
        ("timestamptz", "'-infinity'"),
        ("time", "'24:00:00'"),
    ],
)
def test_a_value_the_driver_refuses_stops_both_paths_alike(
    make_db: Any, tmp_path: Path, sql_type: str, literal: str
) -> None:
    db = make_db("postgresql")
    _fill(db, {sql_type: [literal]})
    errors = []
    for row_path in (False, True):
        try:
            run_backup(db, tmp_path / f"b{row_path}.json", _row_path=row_path)
            errors.append(None)
        except Exception as exc:
            errors.append(type(exc))
    assert errors[0] == errors[1]


DEEP = "[" * 300 + "]" * 300


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
@pytest.mark.parametrize("row_path", [False, True], ids=["fast", "rows"])
def test_a_json_document_nested_past_orjsons_depth_is_kept_as_its_text(
    make_db: Any, tmp_path: Path, engine: str, row_path: bool
) -> None:
    """orjson reads 300 levels but writes at most 254 inside a record: such a document is
    carried as its text (`$stored`) and comes back as it was, where the backup used to stop
    ("Recursion limit reached"). One level less is still written as a document."""
    from rowvault.restore import restore as run_restore

    db = make_db(engine)
    shallow = "[" * 253 + "]" * 253
    engine_ = sa.create_engine(db)
    kind = "json" if engine == "postgresql" else "JSON"
    with _disposing(engine_), engine_.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE docs (id INTEGER PRIMARY KEY, doc {kind})")
        conn.exec_driver_sql(f"INSERT INTO docs VALUES (1, '{DEEP}'), (2, '{shallow}'), (3, '[1]')")
    path = tmp_path / "deep.json"
    run_backup(db, path, _row_path=row_path)
    records = [line.rstrip(",") for line in path.read_text().splitlines() if line.startswith('{"id":')]
    lines = {json.loads(line)["id"]: line for line in records}
    assert '{"$stored":"' + DEEP + '"}' in lines[1]
    assert '"doc":' + shallow + "}" in lines[2]

    again = make_db(engine)
    result = run_restore(again, path)
    assert result.status == "completed" and not result.errors
    target = sa.create_engine(again)
    with _disposing(target), target.connect() as conn:
        docs = dict(conn.exec_driver_sql("SELECT id, CAST(doc AS TEXT) FROM docs").fetchall())
    assert docs[1] == DEEP and docs[2] == shallow


def test_the_postgresql_demo_backs_up_to_the_same_bytes(make_db: Any, tmp_path: Path) -> None:
    db = make_db("postgresql")
    build_demo(db, 3000)
    data = assert_same_file(db, tmp_path)
    assert data.count(b"\n") > 3000


_DOCS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
_PG_ROW = st.tuples(
    st.integers(-(2**63), 2**63 - 1),
    st.text().map(lambda s: s.replace("\x00", "")),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**40), 10**40).flatmap(
        lambda n: st.integers(0, 45).map(lambda e: Decimal(n).scaleb(-e, Context(prec=70)))
    ),
    st.datetimes(),
    st.one_of(st.none(), _DOCS),
    st.booleans(),
)


@contextmanager
def _disposing(engine: sa.Engine) -> Iterator[None]:
    try:
        yield
    finally:
        engine.dispose()


def _scratch_db(kind: str) -> Any:
    """One database for every example of a property (one each would exhaust the server's
    clients)."""
    import uuid

    from .conftest import server_url

    name = f"rv_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url(kind), isolation_level="AUTOCOMMIT")
    create = (
        f'CREATE DATABASE "{name}"'
        if kind == "postgresql"
        else f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(create)
    yield sa.make_url(server_url(kind)).set(database=name).render_as_string(hide_password=False)
    drop = (
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        if kind == "postgresql"
        else f"DROP DATABASE `{name}`"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(drop)
    admin.dispose()


@pytest.fixture(scope="module")
def pg_property_db() -> Any:
    yield from _scratch_db("postgresql")


@pytest.fixture(scope="module")
def my_property_db() -> Any:
    yield from _scratch_db("mysql")


_PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
"""Each property's examples: one scratch database for all of them (a fixture of the module)."""


@_PROPERTY
@given(rows=st.lists(_PG_ROW, min_size=1, max_size=20))
def test_any_postgresql_rows_are_written_as_the_row_path_does(
    pg_property_db: str, tmp_path_factory: Any, rows: list[tuple[Any, ...]]
) -> None:
    import psycopg
    from psycopg.types.json import Json

    libpq = sa.make_url(pg_property_db).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as conn:
        conn.execute("DROP TABLE IF EXISTS p")
        conn.execute(
            "CREATE TABLE p (id serial PRIMARY KEY, i bigint, t text, f float8, d numeric,"
            " ts timestamp, ts_z timestamptz, j json, jb jsonb, b boolean)"
        )
        for i, t, f, d, ts, doc, b in rows:
            text = None if doc is None else Json(doc)
            conn.execute(
                "INSERT INTO p (i, t, f, d, ts, ts_z, j, jb, b)"
                " VALUES (%s, %s, %s, %s, %s, (%s || '+00')::timestamptz, %s, %s, %s)",
                (i, t, f, d, ts, str(ts), text, _jsonb(doc), b),
            )
    assert_same_file(pg_property_db, tmp_path_factory.mktemp("pg"))


def _jsonb(doc: Any) -> Any:
    """jsonb holds no \\u0000."""
    from psycopg.types.json import Jsonb

    return None if doc is None or "\\u0000" in json.dumps(doc) else Jsonb(doc)


def _my_text(*parts: str) -> str:
    return "CONCAT(" + ", ".join(parts) + ")"


MY_TEXT = [
    "''",
    "'abc'",
    "CHAR(0, 1, 8, 9, 10, 11, 12, 13, 14, 26, 31, 127 USING utf8mb4)",
    _my_text("_utf8mb4 x'E280A8E280A9EFBBBF'", "' ü🦉'"),
    _my_text("'\"q\" '", "CHAR(92)", "' / '", "CHAR(92)", "'u001F '", "CHAR(92, 92)", "'u000B '", "CHAR(92)"),
    _my_text("CHAR(92)", "CHAR(11 USING utf8mb4)", "CHAR(92, 92)", "CHAR(31 USING utf8mb4)"),
    "'null'",
    "REPEAT('ab', 5000)",
]
MY_VALUES: dict[str, list[str]] = {
    "BIGINT": ["0", "-9223372036854775808", "9223372036854775807"],
    "BIGINT UNSIGNED": ["18446744073709551615"],
    "TINYINT": ["-128", "127"],
    "BOOL": ["0", "1", "2", "-1"],
    "VARCHAR(50)": ["'ü'", "CHAR(9, 65)"],
    "TEXT": MY_TEXT,
    "CHAR(5)": ["'ab'", "'ü'"],
    "VARCHAR(20) CHARACTER SET latin1": ["'é ß'", "CHAR(11)"],
    "ENUM('a', 'b c')": ["'a'", "'b c'"],
    "VARBINARY(300)": ["''", "x'00ff'", "REPEAT(x'ff00', 100)"],
    "BLOB": ["x'00'", "''"],
    "DECIMAL(10, 2)": ["0", "'12.50'", "'-99999999.99'"],
    "DECIMAL(65, 30)": ["0", "'0.0000001'", "'0.000001'", "'-0.0000019'", "'123.45'", "'1e30'"],
    "DECIMAL(20, 7)": ["0", "'1.5'"],
    "FLOAT": [
        "0",
        "-0.0",
        "0.1",
        "1e-5",
        "0.0001",
        "99999.9",
        "100000",
        "576781.06",
        "3.4e38",
        "1.17549435e-38",
    ],
    "DOUBLE": [
        "0",
        "-0.0",
        "0.1",
        "1e-4",
        "9.99e-5",
        "1e15",
        "999999999999999.9",
        "99999999999999.98",
        "1e16",
        "5e-324",
        "1.7976931348623157e308",
        "0.30000000000000004",
        "-123.456",
    ],
    "DATE": ["'2024-02-29'", "'0001-01-01'", "'9999-12-31'", "'0999-05-06'", "'0000-00-00'", "'2024-00-10'"],
    "DATETIME": [
        "'2024-01-02 03:04:05'",
        "'0000-00-00 00:00:00'",
        "'2024-02-00 01:00:00'",
        "'0001-01-01 00:00:00'",
    ],
    "DATETIME(6)": [
        "'2024-01-02 03:04:05.5'",
        "'2024-01-02 03:04:05.000000'",
        "'9999-12-31 23:59:59.999999'",
    ],
    "TIMESTAMP(6) NULL": ["'2024-01-02 03:04:05.000001'", "'1970-01-01 00:00:01'"],
    "TIME": ["'00:00:00'", "'23:59:59'", "'-00:00:01'", "'838:59:59'", "'-838:59:59'", "'100:00:00'"],
    "TIME(6)": ["'12:30:00.5'", "'07:45:00.01'", "'12:00:00.000000'", "'-01:00:00.5'"],
    "TIME(3)": ["'12:30:00.5'"],
    "JSON": [f"'{d}'" for d in HOSTILE_DOCS if "\\u" not in d and "\\/" not in d and "[[[" not in d]
    + ['\'{"s": "\\\\u00fc \\\\ud83e\\\\udd89 \\\\n \\\\u001f \\\\\\" \\\\\\\\ \\\\/"}\''],
    "UUID": ["'00000000-0000-0000-0000-000000000000'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
    "YEAR": ["2024"],
    "INT(6) ZEROFILL": ["12"],
    "FLOAT(10, 3)": ["1.5"],
}


def _my_fill(url: str, values: dict[str, list[str]]) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        conn.commit()
    engine.dispose()
    _fill(
        url + ("&" if "?" in url else "?") + "init_command=SET+sql_mode%3D%27ALLOW_INVALID_DATES%27",
        values,
        "`",
    )


def test_every_awkward_mariadb_value_is_written_as_the_row_path_does(make_db: Any, tmp_path: Path) -> None:
    db = make_db("mysql")
    _my_fill(db, MY_VALUES)

    data = assert_same_file(db, tmp_path)
    assert b'"$stored"' in data  # the JSON misfits are there, marked
    assert b"\\u001f" in data and b"\\u001F" in data  # an escape in small letters, text as it was


def test_mariadb_tables_of_only_known_types_back_up_to_the_same_bytes_in_one_wide_table(
    make_db: Any, tmp_path: Path
) -> None:
    db = make_db("mysql")
    _my_fill(
        db, _known(MY_VALUES, ("YEAR", "FLOAT(10, 3)", "INT(6) ZEROFILL"))
    )  # those send a table to the row path whole
    assert_same_file(db, tmp_path, ".json")


def test_the_mariadb_demo_backs_up_to_the_same_bytes(make_db: Any, tmp_path: Path) -> None:
    db = make_db("mysql")
    build_demo(db, 3000)
    assert_same_file(db, tmp_path)


_MY_ROW = st.tuples(
    st.integers(-(2**63), 2**63 - 1),
    st.text(st.characters(exclude_categories=("Cs",))),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**35) + 1, 10**35 - 1).flatmap(
        lambda n: st.integers(0, 30).map(lambda e: Decimal(n).scaleb(-e, Context(prec=70)))
    ),
    st.datetimes(),
    st.timedeltas(min_value=timedelta(hours=-838), max_value=timedelta(hours=838)),
    st.one_of(st.none(), _DOCS),
    st.integers(-128, 127),
)


@_PROPERTY
@given(rows=st.lists(_MY_ROW, min_size=1, max_size=20))
def test_any_mariadb_rows_are_written_as_the_row_path_does(
    my_property_db: str, tmp_path_factory: Any, rows: list[tuple[Any, ...]]
) -> None:
    engine = sa.create_engine(my_property_db)
    with _disposing(engine), engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS p")
        conn.exec_driver_sql(
            "CREATE TABLE p (id INTEGER AUTO_INCREMENT PRIMARY KEY, i BIGINT, t LONGTEXT, f DOUBLE,"
            " d DECIMAL(65, 30), ts DATETIME(6), tm TIME(6), j JSON, b BOOL)"
        )
        for i, t, f, d, ts, tm, doc, b in rows:
            conn.exec_driver_sql(
                "INSERT INTO p (i, t, f, d, ts, tm, j, b) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (i, t, f, d, ts, tm, None if doc is None else json.dumps(doc), b),
            )
    assert_same_file(my_property_db, tmp_path_factory.mktemp("my"))


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_a_table_of_many_columns_backs_up_to_the_same_bytes(
    make_db: Any, tmp_path: Path, engine: str
) -> None:
    """Past PostgreSQL's 100 arguments of a function, with rows built in SQL and rows not."""
    db = make_db(engine)
    floating = "double precision" if engine == "postgresql" else "DOUBLE"
    cols = ", ".join(f"c{i} {('INTEGER', 'TEXT', floating)[i % 3]}" for i in range(150))
    values = [("7", "'ü\"'", "0.5"), ("NULL", "''", "1e300")]
    engine_ = sa.create_engine(db)
    with _disposing(engine_), engine_.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE many (id INTEGER PRIMARY KEY, {cols})")
        for n, row in enumerate(values):
            conn.exec_driver_sql(
                f"INSERT INTO many VALUES ({n}, {', '.join(row[i % 3] for i in range(150))})"
            )
    assert_same_file(db, tmp_path)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_limited_tables_and_left_out_demo_rows_back_up_to_the_same_bytes(
    make_db: Any, tmp_path: Path, engine: str
) -> None:
    """The same records as the row path's, line for line; compared as sets: a limited table's
    SELECT has no ORDER BY, and the two runs may get different plans (the new tables are
    analysed in between), so neither path's order is fixed."""
    db = make_db(engine)
    build_demo(db, 2000)
    options = {"limits": {"audit_logs": 50, "daily_metrics": 7, "users": 30}, "include_demo_data": False}
    files = []
    for row_path in (False, True):
        path = tmp_path / f"b{row_path}.json"
        run_backup(db, path, _row_path=row_path, **options)
        files.append(CREATED.sub(b'"createdAt":""', path.read_bytes()))
    assert sorted(_records(files[0])) == sorted(_records(files[1]))
    assert files[0].count(b'{"id":') < 1900


def _records(data: bytes) -> list[bytes]:
    return [line.removesuffix(b",") for line in data.splitlines()]


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_column_names_with_percent_signs_and_quotes_back_up_to_the_same_bytes(
    make_db: Any, tmp_path: Path, engine: str
) -> None:
    """The line's SELECT goes to the server without parameters: no `%` of a name is doubled."""
    db = make_db(engine)
    q = '"' if engine == "postgresql" else "`"
    names = ["what%", "50%%", "a'b", 'say "x"', "%s"]
    cols = ", ".join(f"{q}{n.replace(q, q + q)}{q} TEXT" for n in names)
    engine_ = sa.create_engine(db)
    with _disposing(engine_), engine_.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {q}t%{q} (id INTEGER PRIMARY KEY, {cols})".replace("%", "%%"))
        marks = ", ".join(["%s"] * (len(names) + 1))
        conn.exec_driver_sql(f"INSERT INTO {q}t%%{q} VALUES ({marks})", (1, "a", "b%", "'", '"', "%s"))
    data = assert_same_file(db, tmp_path)
    assert b'"what%":"a"' in data and b'"50%%":"b%"' in data


def test_mariadb_long_text_columns_are_measured_not_assumed_too_long(
    make_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database rowvault restored into MariaDB holds its text as LONGTEXT (4 GB declared):
    its lines are built by the server when the longest row fits the packet, and a table
    whose longest row might not takes the row path - the same bytes either way."""
    from rowvault.dialects import mysql_dump

    db = make_db("mysql")
    engine_ = sa.create_engine(db)
    with _disposing(engine_), engine_.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE small (id INTEGER PRIMARY KEY, t LONGTEXT, b LONGBLOB, m MEDIUMTEXT)"
        )
        conn.exec_driver_sql(
            "INSERT INTO small VALUES (1, 'ü\"x', x'00ff', REPEAT('a', 3000)), (2, NULL, NULL, '')"
        )
        conn.exec_driver_sql("CREATE TABLE huge (id INTEGER PRIMARY KEY, t LONGTEXT)")
        conn.exec_driver_sql("INSERT INTO huge VALUES (1, REPEAT('z', 3000000)), (2, 'short')")
    built: dict[str, bool] = {}
    real = mysql_dump.line_sql

    def spy(spec: Any, *args: Any, **kwargs: Any) -> str | None:
        sql = real(spec, *args, **kwargs)
        built[spec.name] = sql is not None
        return sql

    monkeypatch.setattr(mysql_dump, "line_sql", spy)
    data = assert_same_file(db, tmp_path)
    assert built == {"small": True, "huge": False}  # 3 MB, up to 6 times longer as JSON: past 16 MB
    assert b'"t":"\xc3\xbc\\"x"' in data and b'"b":"AP8="' in data
