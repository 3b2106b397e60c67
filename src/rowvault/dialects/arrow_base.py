"""What an engine's columnar bulk path offers the columnar loader (`rowvault.load.columnar`).

A writer takes one batch as an Arrow table whose columns are the target's columns in order,
already converted by `load.columns`, and writes it in one transaction: straight into the
table when the table is fresh (or the mode inserts), else through a stage table and one
set-based merge that counts created, updated and unchanged rows as the row path does. Any
failure leaves nothing of the batch behind and is raised: the loader then gives the batch
to the row path, which names the refused records.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from .base import Mode, Outcome, Target

if TYPE_CHECKING:
    import pyarrow as pa


class BatchRefused(Exception):
    """The bulk path did not take the whole batch cleanly (LOAD DATA's warnings, say)."""


class ArrowWriter:
    """One table's columnar writes, over the restore's connection unless said otherwise."""

    own_connection = False
    """True: `write` runs and commits its transaction on a connection of its own."""

    def __init__(self, dialect: Any, target: Target, session: dict[str, Any]) -> None:
        self.dialect = dialect
        self.target = target
        self.session = session
        """The restore's per-connection set-up (`LoadContext.session`)."""

    def takes(self, *, fresh: bool, mode: Mode) -> bool:
        """Whether this engine's columnar path writes the table in this mode."""
        return fresh or mode in ("insert", "replace")

    def write(self, conn: Any, table: pa.Table, *, fresh: bool, mode: Mode) -> Outcome:
        raise NotImplementedError

    def start(self, ctx: Any) -> None:
        """Before the table's first batch (`ctx`: the restore's `LoadContext`)."""

    def row_path(self) -> AbstractContextManager[None]:
        """Around a batch the row path writes (a writer with its own connection lets go of it)."""
        return nullcontext()

    def close(self) -> None:
        """After the table's last batch, also when the table stopped part-way."""
