"""End-to-end: the taskledger command line on a real SQLite store, as a person or a script uses it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLOCK = "2026-12-01T03:00:00+00:00"  # Tue 1 Dec 2026, 10:00 local


EXTRA_ENV: dict[str, str] = {}


def tl(
    home: Path, *args: str, actor: str | None = "central_office:VPTW:an", ok: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TASKLEDGER_", "PERSISTENCE_", "POSTGRES_", "SQLITE_"))
    }
    env.update(TASKLEDGER_HOME=str(home), TASKLEDGER_CLOCK=CLOCK, **EXTRA_ENV)
    if actor:
        env["TASKLEDGER_ACTOR"] = actor
    proc = subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def stats(home: Path) -> dict[str, int]:
    return json.loads(tl(home, "stats", "--json").stdout)


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    tl(tmp_path, "pki", "init")
    return tmp_path


def register(home: Path, tmp_path: Path, symbol: str = "57-NQ/TW", **extra: str) -> subprocess.CompletedProcess[str]:
    doc = tmp_path / "doc.txt"
    doc.write_text(f"Nghị quyết {symbol}")
    tl(home, "pki", "sign", str(doc))
    args = [
        "directive",
        "register",
        "--symbol",
        symbol,
        "--title",
        "Đột phá KHCN",
        "--issued-on",
        "2026-11-27",
        "--signer",
        "Tổng Bí thư",
        "--issuing-body",
        "Bộ Chính trị",
        "--presenting-body",
        "VPTW",
        "--confidentiality",
        extra.pop("confidentiality", "regular"),
        "--document",
        str(doc),
        "--signature",
        str(doc) + ".sig",
        "--json",
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    return tl(home, *args, ok=False)


def test_a_signed_directive_and_task_show_their_clocks_in_local_time(home: Path, tmp_path: Path) -> None:
    assert register(home, tmp_path).returncode == 0
    out = tl(
        home,
        "task",
        "assign",
        "--directive",
        "57-NQ/TW",
        "--content",
        "Lập kế hoạch",
        "--assignee",
        "HANOI",
        "--monitor",
        "BKT",
        "--deadline",
        "2026-12-15",
        "--command-id",
        "a1",
        "--at",
        "2026-12-01T10:00:00+07:00",
        "--json",
    ).stdout
    task_id = json.loads(out)["aggregate_id"]
    view = json.loads(tl(home, "task", "show", task_id, "--json").stdout)
    assert view["status"] == "awaiting_receipt"
    assert view["lifecycle"] == "awaiting_receipt"
    assert view["version"] == 1
    # issued Fri 27 Nov: WD1 Mon 30 Nov, WD2 Tue 1 Dec, WD3 Wed 2 Dec -> 17:00 local
    assert view["clocks"]["registration_due_at"] == "2026-12-02T17:00:00+07:00"
    # assigned Tue 1 Dec 10:00 local + 4 WH: 10-12 (2 h), 13-15 (2 h)
    assert view["clocks"]["receipt_due_at"] == "2026-12-01T15:00:00+07:00"
    # under one month: result report at end of WD 3 after Tue 15 Dec -> Fri 18 Dec
    assert view["clocks"]["result_report_due_at"] == "2026-12-18T17:00:00+07:00"
    assert view["clocks"]["deadline_at"] == "2026-12-15T17:00:00+07:00"
    assert view["clocks"]["checkpoints"] == []
    assert view["clocks"]["objection_due_at"] is None


def test_a_refusal_is_one_line_naming_field_and_rule_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    before = stats(home)
    proc = register(home, tmp_path, symbol="99-NQ/TW", confidentiality="absolute_secret")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("refused (confidentiality) confidentiality: absolute_secret")
    assert stats(home) == before


def test_an_assignee_of_another_agency_is_refused_by_name(home: Path, tmp_path: Path) -> None:
    register(home, tmp_path)
    task_id = json.loads(
        tl(
            home,
            "task",
            "assign",
            "--directive",
            "57-NQ/TW",
            "--content",
            "x",
            "--assignee",
            "HANOI",
            "--monitor",
            "BKT",
            "--json",
        ).stdout
    )["aggregate_id"]
    proc = tl(home, "task", "receive", task_id, actor="assignee:HCMC:lan", ok=False)
    assert proc.returncode == 2
    assert "actor.agency: assignee HCMC acts only on tasks of its own agency" in proc.stderr


def test_a_retried_command_id_appends_nothing(home: Path, tmp_path: Path) -> None:
    register(home, tmp_path)
    args = [
        "task",
        "assign",
        "--directive",
        "57-NQ/TW",
        "--content",
        "x",
        "--assignee",
        "HANOI",
        "--monitor",
        "BKT",
        "--command-id",
        "same",
        "--json",
    ]
    first = json.loads(tl(home, *args).stdout)
    events = stats(home)["events"]
    second = json.loads(tl(home, *args).stdout)
    assert second == {**first, "duplicate": True}
    assert stats(home)["events"] == events


def test_demo_loads_a_year_through_the_commands_and_twice_appends_nothing(home: Path) -> None:
    summary = json.loads(tl(home, "demo", "--json").stdout)
    assert summary["tasks"] == 240 and summary["directives"] == 6
    assert summary["appended"] == summary["commands"]
    counts = stats(home)
    # every command appended one event, plus the calendar's establishment
    assert counts == {"directives": 6, "tasks": 240, "events": summary["commands"] + 1, "calendar_changes": 1}
    rows = json.loads(tl(home, "task", "list", "--json").stdout)
    assert len(rows) == 240
    assert len({r["assignee"] for r in rows}) >= 30
    statuses = {r["status"] for r in rows}
    assert {"completed_on_time", "completed_late", "in_progress_on_time", "cancelled"} <= statuses
    assert sum(r["objections"] for r in rows) > 0 and sum(r["transfers"] for r in rows) > 0
    again = json.loads(tl(home, "demo", "--json").stdout)
    assert again["appended"] == 0 and again["duplicates"] == summary["commands"]
    assert stats(home) == counts
    overdue = json.loads(tl(home, "task", "list", "--status", "in_progress_overdue", "--json").stdout)
    assert overdue and all(r["status"] == "in_progress_overdue" for r in overdue)


def test_an_auditor_reads_only_up_to_its_clearance(tmp_path: Path) -> None:
    EXTRA_ENV["TASKLEDGER_CIPHER_KEY"] = base64.b64encode(b"k" * 32).decode()  # a store encrypted at rest
    try:
        home = tmp_path / "home"
        tl(home, "pki", "init")
        register(home, tmp_path)
        tl(
            home,
            "directive",
            "register",
            "--symbol",
            "02-NQ/TW-M",
            "--title",
            "Mật",
            "--issued-on",
            "2026-11-27",
            "--signer",
            "Tổng Bí thư",
            "--issuing-body",
            "Bộ Chính trị",
            "--presenting-body",
            "VPTW",
            "--confidentiality",
            "confidential",
        )
        open_task = json.loads(
            tl(
                home,
                "task",
                "assign",
                "--directive",
                "57-NQ/TW",
                "--content",
                "x",
                "--assignee",
                "HANOI",
                "--monitor",
                "BKT",
                "--json",
            ).stdout
        )["aggregate_id"]
        secret = json.loads(
            tl(
                home, "task", "assign", "--directive", "02-NQ/TW-M", "--assignee", "HANOI", "--monitor", "BKT", "--json"
            ).stdout
        )["aggregate_id"]
        auditor = "auditor:KTTW:lan"
        listed = tl(home, "task", "list", "--json", actor=auditor)
        assert [r["task_id"] for r in json.loads(listed.stdout)] == [open_task]
        assert "withheld: 1 tasks above the clearance of auditor:KTTW:lan (regular)" in listed.stderr
        refused = tl(home, "task", "show", secret, "--json", actor=auditor, ok=False)
        assert refused.returncode == 2
        assert f"clearance: task {secret} is confidential; KTTW:lan is cleared for regular only" in refused.stderr
        tl(home, "audit", "grant", "lan", "--agency", "KTTW", "--level", "confidential")
        shown = json.loads(tl(home, "task", "show", secret, "--json", actor=auditor).stdout)
        assert shown["task_id"] == secret and shown["content"] is None
        assert len(json.loads(tl(home, "task", "list", "--json", actor=auditor).stdout)) == 2
    finally:
        EXTRA_ENV.clear()
