"""A MySQL server may answer any statement with "send me this file of yours" (LOAD DATA LOCAL):
rowvault's connections must never send a file but its own spool file, and that only during
its own LOAD statement. A tiny fake server asks for a secret file and records what comes back."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pymysql.constants import CLIENT

import rowvault
from rowvault.database import open_database

from ..test_mysql_load import loads_done, server_local_infile

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # the fake server's answers

Asker = Callable[[str], bytes | None]
"""A statement -> the file name to ask the client for, or None to answer it harmlessly."""

_CAPS = (
    CLIENT.LONG_PASSWORD
    | CLIENT.CONNECT_WITH_DB
    | CLIENT.LOCAL_FILES
    | CLIENT.PROTOCOL_41
    | CLIENT.TRANSACTIONS
    | CLIENT.SECURE_CONNECTION
    | CLIENT.MULTI_RESULTS
    | CLIENT.PLUGIN_AUTH
)
_OK = b"\x00\x00\x00\x02\x00\x00\x00"
_EOF = b"\xfe\x00\x00\x02\x00"
_VERSION = b"5.7.99-fake"
_ONE_ROW = {"SELECT VERSION()": _VERSION, "SELECT DATABASE()": b"test"}


def _column(name: bytes) -> bytes:
    parts = [b"def", b"", b"", b"", name, name]
    fields = b"".join(bytes([len(p)]) + p for p in parts)
    return fields + b"\x0c" + struct.pack("<HIBHB", 45, 255, 0xFD, 0, 0) + b"\0\0"


class FakeServer:
    """Speaks just enough of the protocol: greets with CLIENT_LOCAL_FILES, takes any login,
    answers each statement with a LOAD DATA LOCAL request (when `ask` names a file), an empty
    result (SELECT, SHOW) or OK. Everything the client sends as file data is kept."""

    def __init__(self, ask: Asker) -> None:
        self.ask = ask
        self.queries: list[str] = []
        self.requests = 0
        self.received = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/test"

    def __enter__(self) -> FakeServer:
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(3)  # a client that waits for nothing must not hang the test
        with sock:
            try:
                greeting = (
                    b"\x0a"
                    + _VERSION
                    + b"\0"
                    + struct.pack("<I", 1)
                    + b"abcdefgh\0"
                    + struct.pack("<HBHHB", _CAPS & 0xFFFF, 45, 2, _CAPS >> 16, 21)
                    + b"\0" * 10
                    + b"ijklmnopqrst\0mysql_native_password\0"
                )
                self._send(sock, 0, greeting)
                self._read(sock)  # the login: welcome, whoever it is
                self._send(sock, 2, _OK)
                while not self._stop.is_set():
                    seq, payload = self._read(sock)
                    if seq != 0:  # the file data of a request, ended by an empty packet
                        with self._lock:
                            self.received += payload
                        if not payload:
                            self._send(sock, seq + 1, _OK)
                    elif payload[:1] == b"\x01":  # COM_QUIT
                        return
                    else:
                        self._answer(sock, payload)
            except (OSError, EOFError):
                return

    def _answer(self, sock: socket.socket, payload: bytes) -> None:
        query = payload[1:].decode("utf-8", "replace") if payload[:1] == b"\x03" else ""
        with self._lock:
            self.queries.append(query)
        # PyMySQL reads its own SET NAMES / SET AUTOCOMMIT as a plain OK: no request there.
        name = self.ask(query) if query and not query.startswith("SET ") else None
        if name is not None:
            with self._lock:
                self.requests += 1
            self._send(sock, 1, b"\xfb" + name)
        elif query.lstrip().upper().startswith(("SELECT", "SHOW")):
            rows = [_ONE_ROW[query]] if query in _ONE_ROW else []
            parts = [b"\x01", _column(b"c"), _EOF, *(bytes([len(r)]) + r for r in rows), _EOF]
            for seq, part in enumerate(parts, start=1):
                self._send(sock, seq, part)
        else:
            self._send(sock, 1, _OK)

    @staticmethod
    def _send(sock: socket.socket, seq: int, payload: bytes) -> None:
        sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq % 256]) + payload)

    @staticmethod
    def _read(sock: socket.socket) -> tuple[int, bytes]:
        def exactly(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = sock.recv(n - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data

        header = exactly(4)
        length = int.from_bytes(header[:3], "little")
        return header[3], exactly(length)


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, bytes]:
    token = f"secret-{uuid.uuid4().hex}".encode()
    path = tmp_path / "id_rsa"
    path.write_bytes(token)
    return path, token


@pytest.fixture
def backup_file(make_db: Callable[[str], str], tmp_path: Path) -> Path:
    """A backup of a table of 100 rows: enough for the LOAD DATA path of a new table."""
    url = make_db("sqlite")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql(
            "INSERT INTO notes (id, body) VALUES " + ", ".join(f"({i}, 'note {i}')" for i in range(100))
        )
    engine.dispose()
    rowvault.backup(url, tmp_path / "notes.json")
    return tmp_path / "notes.json"


def _reflect(url: str, backup: Path) -> None:
    database = open_database(url)
    try:
        sa.inspect(database.engine).get_table_names()
    finally:
        database.close()


def _backup(url: str, backup: Path) -> None:
    rowvault.backup(url, backup.with_name("out.json"))


def _validate(url: str, backup: Path) -> None:
    rowvault.validate(url, backup)


def _restore(url: str, backup: Path) -> None:
    rowvault.restore(url, backup)


def _restore_with_own_engine(url: str, backup: Path) -> None:
    engine = sa.create_engine(url.replace("mysql://", "mysql+pymysql://"))
    try:
        rowvault.restore(engine, backup)
    finally:
        engine.dispose()


def _attempt(work: Callable[[], None]) -> None:
    """Run `work` against the fake server: failing is fine, sending the file is not."""
    with contextlib.suppress(Exception):  # the fake server answers nothing usefully
        work()


@pytest.mark.parametrize(
    "work",
    [_reflect, _backup, _validate, _restore, _restore_with_own_engine],
    ids=lambda f: f.__name__.strip("_"),
)
def test_no_statement_sends_a_file_the_server_asks_for(
    work: Callable[[str, Path], None], secret: tuple[Path, bytes], backup_file: Path
) -> None:
    path, token = secret
    with FakeServer(lambda query: str(path).encode()) as server:
        _attempt(lambda: work(server.url(), backup_file))

    assert server.requests > 0, server.queries
    assert token not in bytes(server.received)


def test_the_load_statement_sends_no_other_file_than_its_spool(
    secret: tuple[Path, bytes], backup_file: Path
) -> None:
    path, token = secret

    def ask(query: str) -> bytes | None:
        return str(path).encode() if query.startswith("LOAD DATA") else None

    with FakeServer(ask) as server:
        _attempt(lambda: rowvault.restore(server.url(), backup_file))

    assert any(q.startswith("LOAD DATA LOCAL INFILE") for q in server.queries), server.queries
    assert token not in bytes(server.received)


def test_the_load_statement_sends_its_spool_file(backup_file: Path) -> None:
    def ask(query: str) -> bytes | None:
        if not query.startswith("LOAD DATA LOCAL INFILE '"):
            return None
        return query.split("'")[1].encode()  # the file the statement names: rowvault's spool

    with FakeServer(ask) as server:
        _attempt(lambda: rowvault.restore(server.url(), backup_file))

    assert server.requests > 0, server.queries
    assert b"note 99" in bytes(server.received)


@pytest.fixture
def notes_backup(backup_file: Path) -> Iterator[Path]:
    with server_local_infile(True):
        yield backup_file


def test_the_load_data_path_still_loads_new_tables(notes_backup: Path, make_db: Callable[[str], str]) -> None:
    target = make_db("mysql")
    before = loads_done()
    result = rowvault.restore(target, notes_backup)

    assert result.error_count == 0, result.errors
    assert loads_done() > before, "the restore into a new table did not use LOAD DATA"
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM notes").scalar() == 100
    engine.dispose()


def test_an_engine_of_the_caller_gets_no_local_files(
    notes_backup: Path, make_db: Callable[[str], str]
) -> None:
    engine = sa.create_engine(make_db("mysql"))
    try:
        result = rowvault.restore(engine, notes_backup)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            assert not raw.client_flag & CLIENT.LOCAL_FILES
            assert conn.exec_driver_sql("SELECT count(*) FROM notes").scalar() == 100
    finally:
        engine.dispose()

    assert result.error_count == 0, result.errors
