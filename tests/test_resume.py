"""A restore that stops part-way (cancel, crash) resumes from its checkpoint: replaying the
last batch is harmless, and tables the first run created still get their indexes and keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import rowvault
from rowvault import RestoreAborted
from rowvault.demo import build_demo
from rowvault.restore import Resume

from .dbdump import dump

JSON_COLUMNS = {"users.settings", "business_products.attributes", "audit_logs.details"}


def test_a_stopped_restore_resumes_to_an_identical_database(
    make_db, engine_kind: str, tmp_path: Path
) -> None:
    source, target = make_db(engine_kind), make_db(engine_kind)
    build_demo(source, 3000)
    backup = tmp_path / "b.json.gz"
    rowvault.backup(source, backup)
    done: dict[str, int] = {}
    created: list[str] = []
    batches = [0]

    def stop_after_a_few() -> bool:
        batches[0] += 1
        return batches[0] > 8

    with pytest.raises(RestoreAborted) as stopped:
        rowvault.restore(
            target,
            backup,
            batch_size=200,
            should_stop=stop_after_a_few,
            on_checkpoint=done.__setitem__,
            on_created=created.extend,
        )
    assert stopped.value.cancelled
    assert 0 < sum(done.values()) < 3000

    # the checkpoint lags one batch behind, as after a crash between commit and checkpoint
    last_table = next(reversed(done))
    done[last_table] = max(0, done[last_table] - 200)
    result = rowvault.restore(target, backup, resume=Resume(done, created))

    assert result.success, result.errors[:3]
    assert dump(target, json_columns=JSON_COLUMNS) == dump(source, json_columns=JSON_COLUMNS)
    inspector = sa.inspect(sa.create_engine(target))
    assert {"created_at"} <= {c for ix in inspector.get_indexes("audit_logs") for c in ix["column_names"]}
    if engine_kind != "sqlite":
        assert inspector.get_foreign_keys("business_products"), "foreign keys added after the resume"
