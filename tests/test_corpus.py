"""The hostile and broken input corpus (tests/corpus/) through every face: the library, the
CLI as a real process, and `POST /api/backup` of a live `rowvault serve`.

Each case ends as it declares: `refused` - a rowvault error whose message names the file and
the place, and the database exactly as before - or `partial` - the restore completes, the
report names every record that is not in the database (and the rejects file holds them),
and the rows there are the good records. Never a traceback, a hang (each case has a
timeout), an HTTP 500, or memory past a ceiling measured on a normal restore of a good file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import rowvault
from rowvault import BackupFileError, ValidationError

from .backupfiles import read_backup
from .corpus import make_corpus
from .corpus.make_corpus import TARGET, Case
from .dbdump import dump
from .server import Server, poll_until_finished, running_server

CASES = make_corpus.cases()
CASE_SECONDS = 60
"""A case that takes longer has hung: its test fails rather than block the run."""
MAX_MESSAGE_CHARS = 4000
"""A message a person can read: a 1 MB name must not become a 1 MB error."""
NO_DETAIL = ("Traceback", "internal error", "lexical error", "\\x", "(right here)")
"""What a user must never see: a stack trace, the server's shrug, parser jargon, raw bytes."""


DEFECTS: dict[str, str] = {}
"""Cases that show a defect outside the files this corpus may fix: xfail, strict."""
_COPIES = (
    "a legitimate 50 MB value costs about 5 times its size: loader._parse holds the batch "
    "joined, orjson's parse and its duplicate-key re-dump, the driver its UTF-8, and "
    "handoff.Handoff.run keeps the last decompressed block (the record) referenced"
)
FACE_DEFECTS: dict[tuple[str, str], str] = {
    ("cli", "big-string-50mb.json.gz"): _COPIES,
    ("api", "big-string-50mb.json.gz"): _COPIES,
}
"""Defects that show through one face only: (face, file) -> the defect."""


def ids(cases: list[Case]) -> list[Any]:
    """One parameter per case, named by its file, with its timeout (and xfail, for a defect)."""
    return [pytest.param(c, id=c.file, marks=_marks(c)) for c in cases]


def _marks(case: Case) -> list[Any]:
    marks: list[Any] = [pytest.mark.timeout(CASE_SECONDS * (3 if case.big else 1))]
    if case.file in DEFECTS:
        marks.append(pytest.mark.xfail(strict=True, reason=DEFECTS[case.file]))
    return marks


def face_marks(face: str, cases: list[Case]) -> list[Any]:
    """`ids(cases)`, plus the xfail of a defect that shows through this face only."""
    params = []
    for param in ids(cases):
        case = param.values[0]
        reason = FACE_DEFECTS.get((face, case.file))
        marks = list(param.marks)
        if reason:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        params.append(pytest.param(case, id=case.file, marks=marks))
    return params


# -- the corpus and the target -------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every corpus file, written once per session by the script kept beside it."""
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus.build(folder)
    (folder / "good.json.gz").write_bytes(make_corpus.good_file())
    return folder


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the target schema and the baseline rows, copied per test."""
    path = tmp_path_factory.mktemp("template") / "target.db"
    make_corpus.seed(f"sqlite:///{path}")
    return path


@pytest.fixture
def target(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "target.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


# -- what a case must end in ---------------------------------------------------------------


def state(url: str) -> dict[str, Any]:
    """Every table and every row: what a refused file must leave as it was."""
    return dump(url)


def assert_refusal_message(case: Case, message: str, name: str, *, api: bool = False) -> None:
    assert name in message, f"the message does not name the file {name!r}: {message}"
    place = case.api_place if api and case.api_place is not None else case.place
    for word in place:
        assert word in message, f"the message does not say {word!r}: {message}"
    assert_readable(message)


def assert_readable(message: str) -> None:
    for word in NO_DETAIL:
        assert word not in message, f"the message shows {word!r}: {message[:2000]}"
    assert len(message) <= MAX_MESSAGE_CHARS, f"a message of {len(message):,} characters: {message[:300]}"


def _canonical(table: sa.Table | None, column: str, value: Any) -> Any:
    """One spelling per value, whatever the engine hands back or the case wrote."""
    if value is None:
        return None
    kind = table.columns[column].type if table is not None and column in table.columns else None
    if isinstance(kind, sa.JSON):
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    if isinstance(kind, sa.DateTime):
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=None).isoformat()
    if isinstance(kind, sa.Float):
        return float(value)
    if isinstance(kind, sa.Numeric):
        return Decimal(str(value)).normalize()
    return value


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows, sorted, as canonical values (the target's own types where known)."""
    engine = sa.create_engine(url)
    found: dict[str, list[tuple[Any, ...]]] = {}
    try:
        reflected = sa.MetaData()
        reflected.reflect(engine)
        with engine.connect() as conn:
            for name, table in reflected.tables.items():
                if name.startswith("rowvault_"):
                    continue
                typed = TARGET.tables.get(name, table)
                rows = conn.execute(sa.select(typed)).mappings().all()
                known = TARGET.tables.get(name)
                found[name] = sorted(
                    (tuple(_canonical(known, c, row[c]) for c in row) for row in rows),
                    key=repr,
                )
    finally:
        engine.dispose()
    return found


def expected_contents(case: Case) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name, records in case.expected().items():
        table = TARGET.tables.get(name)
        columns = (
            [c.name for c in table.columns] if table is not None else list(records[0]) if records else []
        )
        out[name] = sorted(
            (tuple(_canonical(table, c, r.get(c)) for c in columns) for r in records), key=repr
        )
    return out


def assert_partial(case: Case, url: str, errors: list[str], rejected: int | None, *, more: int = 0) -> None:
    """Every record not written is named (and rejected); the rows there are the good ones.
    `more`: errors past the ones listed (the CLI shows the first and counts the rest)."""
    for message in errors:
        assert_readable(message)
    reported = {message.split(" - ")[0] for message in errors}
    if more:
        assert reported <= set(case.bad) and len(reported) + more == len(case.bad), (
            f"listed {sorted(reported)} and {more} more, expected {sorted(case.bad)}"
        )
    else:
        assert reported == set(case.bad), f"reported {sorted(reported)}, expected {sorted(case.bad)}"
    if rejected is not None:
        assert rejected == len(case.bad)
    got, want = contents(url), expected_contents(case)
    assert set(got) == set(want), f"tables {sorted(got)}, expected {sorted(want)}"
    for name in want:
        assert got[name] == want[name], f"table {name!r} differs from the good records"


def rejects_count(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    _, tables = read_backup(path)
    return sum(len(records) for records in tables.values())


# -- (a) the library -----------------------------------------------------------------------


@pytest.mark.parametrize("case", ids(CASES))
def test_the_library_refuses_clearly_or_restores_what_is_good(
    case: Case, corpus: Path, target: str, tmp_path: Path
) -> None:
    path = corpus / case.file
    before = state(target)
    if case.outcome == "refused":
        with pytest.raises((BackupFileError, ValidationError)) as refused:
            rowvault.restore(target, path, rejects_path=tmp_path / "rejects.json")
        assert_refusal_message(case, str(refused.value), str(path))
        assert state(target) == before, "a refused file changed the database"
    else:
        result = rowvault.restore(target, path, rejects_path=tmp_path / "rejects.json")
        assert result.status == "completed"
        assert_partial(case, target, result.errors, rejects_count(result.rejects_path))


ENGINE_CASES = [c for c in CASES if "engines" in c.faces]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
@pytest.mark.parametrize("case", ids(ENGINE_CASES))
def test_the_library_ends_the_same_on_postgresql_and_mariadb(
    case: Case, kind: str, corpus: Path, make_db: Any, tmp_path: Path
) -> None:
    url = make_db(kind)
    make_corpus.seed(url)
    test_the_library_refuses_clearly_or_restores_what_is_good(case, corpus, url, tmp_path)


# -- (b) the CLI, as a real process --------------------------------------------------------


_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs a command and writes its peak RSS: measured from a small process, because a child's
ru_maxrss starts at the RSS of the process that spawned it (here: pytest, which may have
restored a 50 MB value itself)."""


def run_cli(args: list[str], home: Path, seconds: float = CASE_SECONDS) -> tuple[int, str, int]:
    """(exit code, stdout and stderr, peak RSS in KB) of `rowvault ARGS`; a run past
    `seconds` is killed and fails the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROWVAULT_", "DATABASE_URL", "RESTORE_"))}
    env.update(ROWVAULT_HOME=str(home), COLUMNS="1000", PYTHONUNBUFFERED="1")
    home.mkdir(parents=True, exist_ok=True)
    peak_file = home / "peak-rss-kb"
    command = [sys.executable, "-c", _LAUNCHER, str(peak_file), "-m", "rowvault.cli", *args]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            code = process.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"`rowvault {' '.join(args)}` still ran after {seconds}s: it hangs")
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return code, text, int(peak_file.read_text())


def ceiling_kb(normal_kb: int) -> int:
    """What a hostile file may cost: twice a normal restore, or 150 MB more, whichever is more."""
    return max(2 * normal_kb, normal_kb + 150 * 1024)


@pytest.fixture(scope="session")
def cli_normal_kb(corpus: Path, template: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """The CLI's peak RSS restoring a good file of 20,000 records."""
    folder = tmp_path_factory.mktemp("cli-normal")
    shutil.copy(template, folder / "target.db")
    code, output, peak = run_cli(
        ["restore", str(corpus / "good.json.gz"), "--db", f"sqlite:///{folder / 'target.db'}", "--yes"],
        folder / "home",
    )
    assert code == 0, output
    return peak


CLI_CASES = CASES  # every case through a real `rowvault restore` process (about a second each)


def cli_errors(output: str) -> list[str]:
    """The record errors the CLI lists under "N record error(s):"."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "record error(s):" in line), None)
    if start is None:
        return []
    found = []
    for line in lines[start + 1 :]:
        if not line.startswith("  ") or line.startswith("  ... and"):
            break
        found.append(line.strip())
    return found


@pytest.mark.parametrize("case", face_marks("cli", CLI_CASES))
def test_the_cli_refuses_clearly_or_restores_what_is_good(
    case: Case, corpus: Path, target: str, tmp_path: Path, cli_normal_kb: int
) -> None:
    path = corpus / case.file
    before = state(target)
    rejects = tmp_path / "rejects.json"
    code, output, peak = run_cli(
        ["restore", str(path), "--db", target, "--yes", "--rejects", str(rejects)],
        tmp_path / "home",
        CASE_SECONDS * (3 if case.big else 1),
    )
    assert "Traceback" not in output, output
    if case.outcome == "refused":
        assert code == 1, output
        assert_refusal_message(case, output, str(path))
        assert state(target) == before, "a refused file changed the database"
    else:
        assert code == (3 if case.bad else 0), output
        counted = re.search(r"^  \.\.\. and ([\d,]+) more$", output, re.MULTILINE)
        more = int(counted.group(1).replace(",", "")) if counted else 0
        assert_partial(case, target, cli_errors(output), rejects_count(rejects), more=more)
    assert peak <= ceiling_kb(cli_normal_kb), (
        f"peak RSS {peak // 1024} MB, past the ceiling {ceiling_kb(cli_normal_kb) // 1024} MB "
        f"(a normal restore: {cli_normal_kb // 1024} MB)"
    )


# -- (c) POST /api/backup of a live server -------------------------------------------------


class Api:
    """A live `rowvault serve` on one SQLite target, reset to the baseline between cases."""

    def __init__(self, server: Server, client: httpx.Client) -> None:
        self.server = server
        self.client = client
        self.url = server.db_url

    def reset(self) -> None:
        engine = sa.create_engine(self.url)
        try:
            found = sa.MetaData()
            found.reflect(engine)
            found.drop_all(engine)
        finally:
            engine.dispose()
        make_corpus.seed(self.url)

    def processes(self) -> list[int]:
        return [self.server.process.pid, *self.server.children()]

    def reset_peaks(self) -> None:
        for pid in self.processes():
            Path(f"/proc/{pid}/clear_refs").write_text("5")

    def peak_kb(self) -> int:
        peaks = []
        for pid in self.processes():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]))
        return max(peaks)

    def log_since(self, offset: int) -> str:
        return self.server.log.read_bytes()[offset:].decode("utf-8", "replace")

    def post(self, path: Path, *, wait: bool, raw: bool = False) -> httpx.Response:
        params = {"wait": "true"} if wait else {}
        if raw:
            kind = "application/gzip" if path.name.endswith(".gz") else "application/json"
            return self.client.post(
                "/api/backup", params=params, content=path.read_bytes(), headers={"content-type": kind}
            )
        files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        return self.client.post("/api/backup", params=params, files=files)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("api")
    shutil.copy(template, folder / "target.db")
    with running_server(folder / "target.db", folder / "home") as server, server.client() as client:
        client.timeout = httpx.Timeout(CASE_SECONDS)
        yield Api(server, client)


@pytest.fixture(scope="module")
def api_normal_kb(api: Api, corpus: Path) -> int:
    """The server's (and its workers') peak RSS restoring a good file of 20,000 records."""
    api.reset()
    api.reset_peaks()
    answer = api.post(corpus / "good.json.gz", wait=True)
    assert answer.status_code == 200 and answer.json()["success"], answer.text
    return api.peak_kb()


def check_api_answer(case: Case, api: Api, answer: httpx.Response, name: str, before: Any) -> None:
    assert answer.status_code != 500, answer.text
    if case.outcome == "refused":
        assert answer.status_code in (400, 413, 422), answer.text
        body = answer.json()
        assert set(body) >= {"error", "detail"}, body
        assert_refusal_message(case, body["detail"], name, api=True)
        assert state(api.url) == before, "a refused upload changed the database"
        return
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed", body
    assert body["success"] is (not case.bad), body
    rejected = None
    if case.bad:
        download = api.client.get(f"/api/backup/jobs/{body['progressId']}/rejects")
        assert download.status_code == 200, download.text
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rejects.json"
            path.write_bytes(download.content)
            rejected = rejects_count(path)
    assert_partial(case, api.url, body["errors"], rejected)


@pytest.mark.parametrize("case", face_marks("api", CASES))
def test_the_api_answers_a_clear_4xx_or_the_partial_result(
    case: Case, api: Api, corpus: Path, api_normal_kb: int
) -> None:
    api.reset()
    before = state(api.url)
    log_at = api.server.log.stat().st_size
    api.reset_peaks()
    answer = api.post(corpus / case.file, wait=True)
    peak = api.peak_kb()
    check_api_answer(case, api, answer, case.file, before)
    assert "Traceback" not in api.log_since(log_at), api.log_since(log_at)[-3000:]
    assert peak <= ceiling_kb(api_normal_kb), (
        f"server peak RSS {peak // 1024} MB, past the ceiling {ceiling_kb(api_normal_kb) // 1024} MB "
        f"(a normal restore: {api_normal_kb // 1024} MB)"
    )


ASYNC_CASES = [c for c in CASES if "async" in c.faces]


@pytest.mark.parametrize("case", face_marks("async", ASYNC_CASES))
def test_the_api_answers_the_same_without_waiting(case: Case, api: Api, corpus: Path) -> None:
    """The 202 path, with the raw body (the file is then called "upload")."""
    api.reset()
    before = state(api.url)
    answer = api.post(corpus / case.file, wait=False, raw=True)
    assert answer.status_code != 500, answer.text
    if case.outcome == "refused":
        check_api_answer(case, api, answer, "upload", before)
        return
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["progressId"]
    last = poll_until_finished(api.client, job_id, timeout=CASE_SECONDS)[-1]
    assert last["status"] == "completed", last
    job = api.client.get(f"/api/backup/jobs/{job_id}").json()
    errors = api.client.get(f"/api/backup/jobs/{job_id}/errors").text.splitlines()
    assert job["result"]["success"] is (not case.bad), job
    assert_partial(case, api.url, errors, None)


def test_the_corpus_readme_lists_every_case() -> None:
    """The README beside the script says what each case is and must end in."""
    readme = (Path(make_corpus.__file__).parent / "README.md").read_text()
    for case in CASES:
        if case.file.startswith("truncated-"):
            family = re.sub(r"-\d{5}.*", "", case.file)  # truncated-gzip-00753.json.gz -> truncated-gzip
            assert f"`{family}-NNNNN" in readme, family
        else:
            row = next((line for line in readme.splitlines() if f"`{case.file}`" in line), "")
            assert f"| {case.outcome}" in row, f"{case.file} is not listed as {case.outcome}"
    assert f"## Cases ({len(CASES)})" in readme
