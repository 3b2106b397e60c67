"""The validation pass as a stage of its own: `reading`, bytes read of the file's size.

Before a restore writes, the whole file is read once (`BackupFile.scan`); on a large file
that takes seconds, so the faces show it as the job's first stage with a bar of bytes, from
the same progress record as every later stage.
"""

from __future__ import annotations

from ..file.reader import BackupFile, FileSummary
from ..progress import Progress, ProgressCallback, utc_now


def read_file(file: BackupFile, report: ProgressCallback) -> FileSummary:
    """Scan `file`, telling `report` a progress record in stage `reading` as it goes."""
    state = Progress(status="running")
    state.started_at = utc_now()
    state.enter_phase("reading")
    report(state)

    def step(done: int, total: int | None) -> None:
        assert state.phase is not None
        state.phase.total = total
        state.step_phase(done)
        report(state)

    return file.scan(step)
