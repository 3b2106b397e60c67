"""MariaDB's LOAD DATA path for plain inserts: values that its file format must escape come
back exactly, a record the server would only warn about is still reported as an error, and
the foreign keys added after the data are enforced."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

import rowvault
from rowvault.dialects.mysql_connection import GuardedConnection

from .backupfiles import read_backup, write_backup
from .conftest import server_url
from .dbdump import Dump, counts, dump

ROWS = 300
AWKWARD = [
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    'a "quoted" word',
    "back\\slash",
    "\\N",
    "NULL",
    "",
    "trailing backslash\\",
    '"',
    "emoji 🦉 and ünïcödé",
    "nul \x00 byte",
    "ctrl-z \x1a",
    "  spaces  ",
]
BYTES = [b"", b"\x00", b"\\", b'"', b"\t\n\r", bytes(range(256))]


@contextmanager
def server_local_infile(on: bool) -> Iterator[None]:
    """The server's local_infile setting for the block, then back to what it was."""
    admin = sa.create_engine(server_url("mysql"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        was = conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar()
        conn.exec_driver_sql(f"SET GLOBAL local_infile = {int(on)}")
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SET GLOBAL local_infile = {int(was)}")
        admin.dispose()


def loads_done() -> int:
    """The server's count of LOAD DATA statements (Com_load), to see which path ran."""
    with sa.create_engine(server_url("mysql")).connect() as conn:
        return int(conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Com_load'").fetchone()[1])


def awkward_source(url: str) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "awkward",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(200)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("amount", sa.Numeric(14, 4)),
        sa.Column("ratio", sa.Float),
        sa.Column("flag", sa.Boolean),
        sa.Column("at", sa.DateTime),
        sa.Column("token", sa.String(36)),
        sa.Column("doc", sa.JSON),
    )
    rows = [
        {
            "id": i + 1,  # a 0 beside the blob column goes through executemany (RENUMBERS_ZERO)
            "label": None if i % 9 == 0 else AWKWARD[i % len(AWKWARD)],
            "body": AWKWARD[(i + 3) % len(AWKWARD)],
            "blob": None if i % 11 == 0 else BYTES[i % len(BYTES)],
            "amount": None if i % 13 == 0 else Decimal(f"{i * 7}.{i % 10000:04d}") * (-1 if i % 2 else 1),
            "ratio": None if i % 17 == 0 else i / 7,
            "flag": None if i % 19 == 0 else bool(i % 2),
            "at": datetime(2024, 2, 29, 23, 59, 58, i * 1000),
            "token": str(uuid.UUID(int=i)),
            "doc": {"text": AWKWARD[i % len(AWKWARD)], "n": i},
        }
        for i in range(ROWS)
    ]
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


def dumped(url: str) -> Dump:
    return dump(url, json_columns={"awkward.doc"})


@pytest.fixture
def awkward(make_db: Callable[[str], str], tmp_path: Path) -> tuple[str, Path]:
    """A MariaDB database holding the awkward table, and its backup."""
    source = make_db("mysql")
    awkward_source(source)
    rowvault.backup(source, tmp_path / "awkward.json")
    return source, tmp_path / "awkward.json"


def test_awkward_values_come_back_exactly(awkward: tuple[str, Path], make_db: Callable[[str], str]) -> None:
    (source, backup), target = awkward, make_db("mysql")
    before = loads_done()
    with server_local_infile(True):
        result = rowvault.restore(target, backup)

    assert result.error_count == 0, result.errors
    assert loads_done() > before, "the restore into a new table did not use LOAD DATA"
    assert dumped(target) == dumped(source)


def test_a_record_the_server_would_only_warn_about_is_an_error(
    awkward: tuple[str, Path], make_db: Callable[[str], str], tmp_path: Path
) -> None:
    (source, backup), target = awkward, make_db("mysql")
    metadata, tables = read_backup(backup)
    tables["awkward"][40]["label"] = "x" * 201  # too long: LOAD DATA LOCAL would cut it, with a warning
    tables["awkward"][41]["body"] = None  # NOT NULL: LOAD DATA LOCAL would store '', with a warning
    spoiled = write_backup(tmp_path / "spoiled.json", metadata, tables)

    with server_local_infile(True):
        result = rowvault.restore(target, spoiled)

    assert sorted(e.split(" - ")[0] for e in result.errors) == ["awkward:41", "awkward:42"]  # ids from 1
    assert counts(target) == {"awkward": ROWS - 2}
    wanted = dumped(source)
    wanted["awkward"] = [r for r in wanted["awkward"] if r[0] not in (41, 42)]
    assert dumped(target) == wanted


def test_foreign_keys_added_after_the_data_are_enforced(
    make_db: Callable[[str], str], tmp_path: Path
) -> None:
    from rowvault.demo import build_demo

    source, target = make_db("sqlite"), make_db("mysql")
    build_demo(source, 2000)
    rowvault.backup(source, tmp_path / "demo.json")
    assert rowvault.restore(target, tmp_path / "demo.json").error_count == 0

    engine = sa.create_engine(target)
    try:
        assert sa.inspect(engine).get_foreign_keys("business_products")
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql("UPDATE business_products SET business_id = 999999 LIMIT 1")
    finally:
        engine.dispose()


def test_without_load_data_on_the_server_the_restore_still_works(
    awkward: tuple[str, Path], make_db: Callable[[str], str]
) -> None:
    (source, backup), target = awkward, make_db("mysql")
    with server_local_infile(False):
        result = rowvault.restore(target, backup)

    assert result.error_count == 0, result.errors
    assert dumped(target) == dumped(source)


KEYS = [0, *range(1000, 1000 + ROWS - 1)]


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "row-path"])
def test_a_zero_key_beside_a_blob_column_stays_zero(
    columnar: bool, make_db: Callable[[str], str], tmp_path: Path
) -> None:
    """MariaDB's LOAD DATA with a SET clause (how blobs arrive: UNHEX) gives a 0 in an
    AUTO_INCREMENT column a new number, NO_AUTO_VALUE_ON_ZERO or not: such batches are
    written another way. (Keys far apart: no duplicate warns of the renumbered row.)"""
    source = tmp_path / "source.db"
    engine = sa.create_engine(f"sqlite:///{source}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE files (id INTEGER PRIMARY KEY, body BLOB)")
        conn.exec_driver_sql("INSERT INTO files VALUES " + ", ".join(f"({i}, X'5C4E09')" for i in KEYS))
    engine.dispose()
    backup = tmp_path / "files.json"
    rowvault.backup(source, backup)
    target = make_db("mysql")
    result = rowvault.restore(target, backup, columnar=columnar)
    assert result.success, result.errors
    restored = sa.create_engine(target)
    with restored.connect() as conn:
        ids = sorted(r[0] for r in conn.exec_driver_sql("SELECT id FROM files"))
        bodies = {r[0] for r in conn.exec_driver_sql("SELECT body FROM files")}
    restored.dispose()
    assert ids == KEYS and bodies == {b"\\N\t"}


def test_a_connection_killed_while_it_sends_its_file_is_reported_as_lost(tmp_path: Path) -> None:
    """The server drops the connection in the middle of LOAD DATA LOCAL: the statement fails
    as a lost connection (which a restore retries on a new one), not as an internal error
    (PyMySQL closes the connection, then writes its end-of-file packet on it anyway). The
    file is a pipe, so the kill comes while the client is still sending."""
    url = sa.make_url(server_url("mysql"))
    # a killed connection's server stops reading; the write timeout ends the wait for it
    conn = GuardedConnection(
        host=url.host, port=url.port or 3306, user=url.username, database=url.database, write_timeout=2
    )
    admin = sa.create_engine(server_url("mysql"), isolation_level="AUTOCOMMIT")
    table = f"rv_killed_{uuid.uuid4().hex[:8]}"
    pipe = tmp_path / "rows.csv"
    os.mkfifo(pipe)
    line = b"x" * 1000 + b"\n"

    def feed_then_kill() -> None:
        with pipe.open("wb") as out:
            out.write(line * 2000)  # the LOAD is under way
            out.flush()
            with admin.connect() as c:
                c.exec_driver_sql(f"KILL CONNECTION {int(conn.thread_id())}")
            for _ in range(200):  # and goes on sending into a closed connection
                try:
                    out.write(line * 1000)
                except BrokenPipeError:
                    return

    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (body TEXT)")
        feeder = threading.Thread(target=feed_then_kill)
        feeder.start()
        with pytest.raises(pymysql.err.OperationalError) as lost, conn.sending(str(pipe)):
            with conn.cursor() as cursor:
                cursor.execute(f"LOAD DATA LOCAL INFILE '{pipe}' INTO TABLE {table} (body)")
        feeder.join(timeout=30)
        assert lost.value.args[0] in (2006, 2013), lost.value
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        admin.dispose()
