"""How much a backup file may cost to read: the longest line, the decompressed size, the
compression ratio.

A small file must not cost minutes or gigabytes: a gzip of a megabyte can hold a gigabyte of
spaces. The library and the CLI cap only the line (a record far past any real row is damage,
and holding it would take its size in memory); the HTTP service also caps what an upload may
expand to, from its settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError

MAX_LINE_BYTES = 64 << 20
"""The longest line (one record, or the metadata) rowvault reads: 64 MiB. A JSON record of
that size is far past any real row; in other JSON layouts it bounds one value (or one run of
whitespace) instead."""
RATIO_AFTER_BYTES = 64 << 20
"""The compression ratio is judged only past this much output: a small file may compress
very well (an empty table's records, a column of equal values) without being a bomb."""


@dataclass(frozen=True)
class ReadLimits:
    """Caps applied while a backup is read; None means no cap.

    `max_expanded_bytes` and `max_ratio` bound gzip's output (in total, and against the
    compressed bytes consumed, once past `RATIO_AFTER_BYTES`); plain files are bounded by
    their own size."""

    max_line_bytes: int = MAX_LINE_BYTES
    max_expanded_bytes: int | None = None
    max_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1:
            raise OptionError(f"max_line_bytes must be at least 1, not {self.max_line_bytes}")
        if self.max_expanded_bytes is not None and self.max_expanded_bytes < 1:
            raise OptionError(f"max_expanded_bytes must be at least 1, not {self.max_expanded_bytes}")
        if self.max_ratio is not None and self.max_ratio < 1:
            raise OptionError(f"max_ratio must be at least 1, not {self.max_ratio}")

    @property
    def caps_expansion(self) -> bool:
        return self.max_expanded_bytes is not None or self.max_ratio is not None


def describe_size(n: int) -> str:
    """`64 MiB`, `1.5 GiB`, `900 bytes`: for messages."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{n:,} bytes"
