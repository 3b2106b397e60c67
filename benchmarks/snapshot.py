"""What the safety snapshot costs: a restore job with the snapshot on against off (issue 11).

    python benchmarks/snapshot.py [--records 1000000] [--rounds 2] [--undo]

Uses the demo backup and database benchmarks/restore.py builds (cached under
benchmarks/out/). Each run is a restore job through the job runner (what `rowvault restore
--snapshot` and the web page run), in its own process with its own ROWVAULT_HOME, into:

- empty: a new SQLite file (the restore creates every table);
- empty tables: a SQLite file holding the demo tables without rows;
- populated: a copy of the database the backup was made from (every key already there:
  the snapshot saves every row).

Rounds alternate off and on; the fastest run of each counts (and the medians' ratio is shown:
the machines are noisy). Prints seconds, the ratio on/off,
the snapshot's own seconds (`take_snapshot`) and peak RSS; `--undo` also
times the undo of the populated restore.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restore import prepare

SCENARIOS = ("empty", "empty tables", "populated")


def run_phase(scenario: str, snapshot: bool, backup: Path, source: Path, undo: bool) -> dict[str, float]:
    """One restore job, in this process (started by `main` as a subprocess)."""
    import sqlalchemy as sa

    from rowvault.demo import metadata
    from rowvault.jobs import new_runner
    from rowvault.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="rv-snapbench-"))
    try:
        target = work / "target.db"
        if scenario == "populated":
            shutil.copyfile(source, target)
        elif scenario == "empty tables":
            engine = sa.create_engine(f"sqlite:///{target}")
            metadata.create_all(engine)
            engine.dispose()
        os.environ["ROWVAULT_HOME"] = str(work / "home")
        stage = _StageClock()
        runner = new_runner(load_settings(DATABASE_URL=f"sqlite:///{target}"), freeze_heap=True)
        try:
            started = time.perf_counter()
            job = runner.run(runner.create_restore(backup, {"snapshot": snapshot}).id)
            seconds = time.perf_counter() - started
            assert job.status == "completed", job.error
            figures = {"seconds": seconds, "snapshot": stage.seconds}
            if undo and snapshot:
                started = time.perf_counter()
                undone = runner.run(runner.create_undo(job.id).id)
                assert undone.status == "completed", undone.error
                figures["undo"] = time.perf_counter() - started
        finally:
            runner.close()
            runner.store.close()
        figures["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _StageClock:
    """Times the job's safety snapshot: wraps the runner's `take_snapshot`."""

    def __init__(self) -> None:
        import rowvault.jobs.runner as runner_module

        self.seconds = 0.0
        original = runner_module.take_snapshot

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        runner_module.take_snapshot = timed


def spawn(scenario: str, snapshot: bool, records: int, undo: bool) -> dict[str, float]:
    args = [sys.executable, __file__, "--records", str(records), "--phase", scenario]
    args += ["--on"] if snapshot else []
    args += ["--undo"] if undo else []
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(
            f"{scenario} (snapshot {'on' if snapshot else 'off'}) failed:\n{done.stderr[-2000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--undo", action="store_true")
    parser.add_argument("--phase", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--on", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    source, backup = prepare(args.records)
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.on, backup, source, args.undo)))
        return
    print("| target | snapshot off | snapshot on | ratio | median ratio | snapshot stage | peak RSS on |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for scenario in args.scenario or SCENARIOS:
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for on in (False, True):
                runs[on].append(spawn(scenario, on, args.records, args.undo and scenario == "populated"))
        off = min(runs[False], key=lambda r: r["seconds"])
        on = min(runs[True], key=lambda r: r["seconds"])
        middle = median(r["seconds"] for r in runs[True]) / median(r["seconds"] for r in runs[False])
        print(
            f"| {scenario} | {off['seconds']:.2f} s | {on['seconds']:.2f} s | "
            f"{on['seconds'] / off['seconds']:.3f} | {middle:.3f} | {on['snapshot']:.2f} s | "
            f"{on['rss_mb']:.0f} MB |",
            flush=True,
        )
        if "undo" in on:
            print(f"|   undo of the {scenario} restore | | {on['undo']:.2f} s | | | | |", flush=True)
        each = {on: ", ".join(f"{r['seconds']:.2f}" for r in runs[on]) for on in runs}
        print(f"<!-- {scenario}: every run off {each[False]}; on {each[True]} -->", flush=True)


if __name__ == "__main__":
    main()
