"""The closed set of types a restore creates: known names spelled again, anything else refused."""

from __future__ import annotations

import pytest

from rowvault.typenames import TypeNameError, vetted_type


@pytest.mark.parametrize(
    ("dialect", "text", "spelled"),
    [
        ("postgresql", "TIMESTAMP(3) WITH TIME ZONE", "TIMESTAMP(3) WITH TIME ZONE"),
        ("postgresql", "timestamp without time zone", "TIMESTAMP WITHOUT TIME ZONE"),
        ("postgresql", "INTERVAL DAY TO SECOND", "INTERVAL DAY TO SECOND"),
        ("postgresql", "VARCHAR(20)[][]", "VARCHAR(20)[][]"),
        ("postgresql", "NUMERIC( 10 , 2 )", "NUMERIC(10, 2)"),
        ("postgresql", 'VARCHAR(20) COLLATE "C"', 'VARCHAR(20) COLLATE "C"'),
        (
            "mysql",
            "varchar(20) character set latin1 collate latin1_bin",
            "VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_bin",
        ),
        ("mysql", "VARCHAR(20) COLLATE utf8mb4_bin", "VARCHAR(20) COLLATE utf8mb4_bin"),
        ("mysql", "BIGINT(20) UNSIGNED ZEROFILL", "BIGINT(20) UNSIGNED ZEROFILL"),
        ("mysql", "DATETIME(6)", "DATETIME(6)"),
        ("mysql", "UUID", "UUID"),
        ("sqlite", "VARCHAR(20)", "VARCHAR(20)"),
    ],
)
def test_a_known_type_is_spelled_again_by_rowvault(dialect: str, text: str, spelled: str) -> None:
    assert vetted_type(text, dialect) == spelled


@pytest.mark.parametrize(
    ("dialect", "text"),
    [
        ("postgresql", "mood"),  # an enum or domain of the source
        ("postgresql", '"Mood"'),
        ("postgresql", "TEXT NOT NULL"),  # words the type does not take
        ("postgresql", "DOUBLE(10) PRECISION"),
        ("mysql", "ENUM('a','b')"),  # values are never copied
        ("mysql", "VARCHAR(20)[]"),  # arrays only on PostgreSQL
        ("sqlite", "NULL"),
        ("mysql", ""),
    ],
)
def test_a_well_formed_unknown_type_gets_the_portable_type(dialect: str, text: str) -> None:
    assert vetted_type(text, dialect) is None


@pytest.mark.parametrize(
    "text",
    [
        "INTEGER); DROP TABLE users; --",
        "TEXT; COMMIT",
        "INT COMMENT 'x'",
        "INTEGER DEFAULT 1",
        'VARCHAR(20) COLLATE "C"; DROP TABLE t',
        "VARCHAR(99999999)",
        "NUMERIC(1, 2, 3)",
        "TEXT COLLATE",
        "TEXT /* x */",
        "TIME(1)(2)",
        "X" * 300,
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    for dialect in ("postgresql", "mysql", "sqlite"):
        with pytest.raises(TypeNameError):
            vetted_type(text, dialect)
