"""The rows of an unbuffered PyMySQL result read in batches, straight from the socket.

PyMySQL reads each row through half a dozen Python calls and objects per packet and per
value (`Connection._read_packet`, `MysqlPacket`, `MySQLResult._read_row_from_packet`):
about 5 us a row, most of a fast backup's time once the server builds the lines. Here a
row costs two buffered reads and a slice per value. What PyMySQL does is kept: the
packet's sequence number, a packet split at 16 MB, an error packet raised as PyMySQL
raises it, the end of the result handed back to the result object (its warning count, no
more rows to read), a lost connection as `OperationalError` 2013, and each value read with
the result's own (encoding, converter) of its field.

Used only where PyMySQL's internals are the ones this was written against; else None, and
the cursor's own `fetchmany` reads the rows.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

from pymysql import err
from pymysql.constants import CR
from pymysql.protocol import MysqlPacket

_MAX_PACKET = 0xFFFFFF
_NULL, _TWO, _THREE, _EIGHT = 251, 252, 253, 254
_EOF, _ERROR = 0xFE, 0xFF


class PacketRows:
    """An unbuffered result's remaining rows (see the module docstring)."""

    def __init__(self, conn: Any, result: Any) -> None:
        self.conn = conn
        self.result = result
        self.converters: list[tuple[Any, Any]] = list(result.converters)

    @classmethod
    def of(cls, cursor: Any) -> PacketRows | None:
        conn, result = cursor.connection, getattr(cursor, "_result", None)
        known = ("_rfile", "_next_seq_id", "_force_close", "encoding", "_read_timeout", "_current_timeout")
        if result is None or not all(hasattr(conn, name) for name in known):
            return None
        if not getattr(result, "unbuffered_active", False) or not hasattr(result, "converters"):
            return None
        return cls(conn, result)

    def batches(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        conn = self.conn
        if conn._current_timeout != conn._read_timeout:
            conn._sock.settimeout(conn._read_timeout)
            conn._current_timeout = conn._read_timeout
        batch: list[tuple[Any, ...]] = []
        while (payload := self._packet()) is not None:
            batch.append(self._row(payload))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _read(self, n: int) -> bytes:
        conn = self.conn
        while True:
            try:
                data: bytes = conn._rfile.read(n)
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                conn._force_close()
                raise err.OperationalError(
                    CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query ({exc})"
                ) from exc
            except BaseException:
                conn._force_close()
                raise
        if len(data) < n:
            conn._force_close()
            raise err.OperationalError(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query")
        return data

    def _packet(self) -> bytes | None:
        """The next row's payload; None at the end of the result."""
        conn, parts = self.conn, []
        while True:
            header = self._read(4)
            if header[3] != conn._next_seq_id:
                conn._force_close()
                if header[3] == 0:
                    raise err.OperationalError(
                        CR.CR_SERVER_LOST, "Lost connection to MySQL server during query"
                    )
                raise err.InternalError(
                    f"Packet sequence number wrong - got {header[3]} expected {conn._next_seq_id}"
                )
            conn._next_seq_id = (conn._next_seq_id + 1) % 256
            length = header[0] | header[1] << 8 | header[2] << 16
            parts.append(self._read(length))
            if length < _MAX_PACKET:
                break
        payload = parts[0] if len(parts) == 1 else b"".join(parts)
        first = payload[0] if payload else -1
        if first == _ERROR:
            self.result.unbuffered_active = False
            MysqlPacket(payload, conn.encoding).raise_for_error()
        if first == _EOF and len(payload) < 9:
            result = self.result
            result._check_packet_is_eof(MysqlPacket(payload, conn.encoding))
            result.unbuffered_active = False
            result.connection = None
            result.rows = None
            return None
        return payload

    def _row(self, payload: bytes) -> tuple[Any, ...]:
        row: list[Any] = []
        pos = 0
        for encoding, converter in self.converters:
            n = payload[pos]
            pos += 1
            if n == _NULL:
                row.append(None)
                continue
            if n >= _TWO:
                width = 2 if n == _TWO else 3 if n == _THREE else 8
                n = int.from_bytes(payload[pos : pos + width], "little")
                pos += width
            data: Any = payload[pos : pos + n]
            pos += n
            if encoding is not None:
                data = data.decode(encoding)
            if converter is not None:
                data = converter(data)
            row.append(data)
        return tuple(row)
