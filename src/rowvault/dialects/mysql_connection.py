"""The PyMySQL connection of the engines rowvault makes: `LOAD DATA LOCAL` may send one file,
rowvault's own spool file, during rowvault's own statement, and no other file ever.

In LOAD DATA LOCAL the *server* names the client file to send, and PyMySQL with `local_infile`
opens whatever name it gets, in answer to any statement: a hostile or compromised server could
read ~/.ssh/id_rsa during a `SELECT 1`. So the connection tells the server it can send files
(without CLIENT_LOCAL_FILES the server refuses LOAD DATA LOCAL) but keeps PyMySQL's transfer
off, and answers a request itself: the file is sent only inside `sending(path)` and only when
the server asks for exactly that path; any other request gets an empty file and an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

import pymysql
from pymysql.constants import CLIENT, CR
from pymysql.protocol import LoadLocalPacketWrapper


class GuardedConnection(pymysql.connections.Connection):  # type: ignore[misc]  # PyMySQL is untyped
    """A PyMySQL connection whose LOAD DATA LOCAL sends only the file it was told to."""

    _sendable: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        offer = bool(kwargs.pop("local_infile", True))  # a URL's local_infile=0 is respected
        if offer:
            kwargs["client_flag"] = int(kwargs.get("client_flag", 0)) | CLIENT.LOCAL_FILES
        super().__init__(*args, local_infile=False, **kwargs)

    @property
    def offers_local_files(self) -> bool:
        """Whether the server was told this client can send files (LOAD DATA LOCAL)."""
        return bool(self.client_flag & CLIENT.LOCAL_FILES)

    @contextlib.contextmanager
    def sending(self, path: str) -> Iterator[None]:
        """Let the server have the file `path` - no other - while the block runs."""
        self._sendable = path
        try:
            yield
        finally:
            self._sendable = None

    def may_send(self, asked: bytes) -> bool:
        return self._sendable is not None and asked == self._sendable.encode(self.encoding)

    def _read_query_result(self, unbuffered: bool = False) -> Any:
        # PyMySQL's own, with _GuardedResult for MySQLResult: the one place a request for a
        # file is read, for every statement and every result of it (there is no other hook).
        self._result = None
        result = _GuardedResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows


class _GuardedResult(pymysql.connections.MySQLResult):  # type: ignore[misc]  # PyMySQL is untyped
    def _read_load_local_packet(self, first_packet: Any) -> None:
        conn: GuardedConnection = self.connection
        asked = bytes(LoadLocalPacketWrapper(first_packet).filename)
        if not conn.may_send(asked):
            _refuse(conn, asked)
        conn._local_infile = True  # for PyMySQL's transfer of this one, checked, file
        try:
            super()._read_load_local_packet(first_packet)
        except AttributeError as exc:
            # The connection died while the file was going out: PyMySQL closed it (its socket
            # is None), then still writes the end-of-file packet on it. That is a lost
            # connection, to be retried on a new one, not a bug of ours.
            if conn._sock is not None:
                raise
            lost = exc.__context__
            message = lost.args[1] if isinstance(lost, pymysql.err.OperationalError) else str(lost)
            raise pymysql.err.OperationalError(CR.CR_SERVER_GONE_ERROR, message) from lost
        finally:
            conn._local_infile = False


def _refuse(conn: GuardedConnection, asked: bytes) -> NoReturn:
    """Answer with an empty file, as the MySQL client library does, so the connection stays in
    step with the server; then fail the statement."""
    conn.write_packet(b"")
    with contextlib.suppress(pymysql.err.MySQLError):
        conn._read_packet()  # the server's answer to the empty file: OK or an error
    raise pymysql.err.OperationalError(
        CR.CR_LOAD_DATA_LOCAL_INFILE_REJECTED,
        f"the server asked for the local file {asked.decode(errors='replace')!r}: refused, "
        "rowvault sends only its own spool file during its own LOAD DATA statement",
    )
