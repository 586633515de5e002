"""Demo data: a realistic year of directives and tasks, loaded through the same commands.

Deterministic for a seed; every command carries a command id, so loading twice appends nothing
(and loading later appends only what has 'happened' since)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from connectors.pki import init_dev_pki, read_trusted_roots, sign_document
from connectors.settings import Settings
from domain import commands as c
from domain.actors import Actor, Role
from domain.application import TaskLedger
from domain.calendar import Calendar
from domain.events import directive_id_for, task_id_for
from domain.values import AgencyKind

START = datetime(2025, 12, 1, 1, 0, tzinfo=timezone.utc)  # 08:00 local, Mon 1 Dec 2025
BATCH = 400

PROVINCES = [
    "HANOI",
    "HCMC",
    "HAIPHONG",
    "DANANG",
    "CANTHO",
    "HUE",
    "QUANGNINH",
    "CAOBANG",
    "LANGSON",
    "LAICHAU",
    "DIENBIEN",
    "SONLA",
    "THANHHOA",
    "NGHEAN",
    "HATINH",
    "TUYENQUANG",
    "LAOCAI",
    "THAINGUYEN",
    "PHUTHO",
    "BACNINH",
    "HUNGYEN",
    "NINHBINH",
    "QUANGTRI",
    "QUANGNGAI",
    "GIALAI",
    "KHANHHOA",
    "LAMDONG",
    "DAKLAK",
    "DONGNAI",
    "TAYNINH",
    "VINHLONG",
    "DONGTHAP",
    "CAMAU",
    "ANGIANG",
]
CENTRAL = ["BTCTW", "BTGDVTW", "BNCTW", "BCSDCP", "DUQH", "DUMTTQ", "UBKTTW", "BDNTW"]
MONITORS = ["VPTW", "BTCTW", "UBKTTW", "BNCTW", "BTGDVTW"]
DIRECTIVES = [
    (
        "57-NQ/TW",
        "Nghị quyết về đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
        date(2025, 12, 2),
    ),
    ("59-NQ/TW", "Nghị quyết về hội nhập quốc tế trong tình hình mới", date(2025, 12, 15)),
    ("66-NQ/TW", "Nghị quyết về đổi mới công tác xây dựng và thi hành pháp luật", date(2026, 1, 20)),
    ("68-NQ/TW", "Nghị quyết về phát triển kinh tế tư nhân", date(2026, 3, 9)),
    ("71-NQ/TW", "Nghị quyết về đột phá phát triển giáo dục và đào tạo", date(2026, 5, 11)),
    ("72-NQ/TW", "Nghị quyết về tăng cường bảo vệ, chăm sóc và nâng cao sức khỏe nhân dân", date(2026, 7, 6)),
]
WORK = [
    "Xây dựng kế hoạch thực hiện",
    "Sơ kết việc triển khai",
    "Ban hành đề án",
    "Rà soát văn bản quy phạm",
    "Tổ chức học tập, quán triệt",
    "Hoàn thiện cơ sở dữ liệu",
    "Báo cáo kết quả thí điểm",
]
OFFICE = Actor(Role.CENTRAL_OFFICE, "VPTW", "vanphong")
INSPECTOR = Actor(Role.INSPECTOR, "UBKTTW", "thanhtra")


class Story:
    """One task's simulated life: commands with business times, cut at ``now``."""

    def __init__(self, rnd: random.Random, cal: Calendar, now: datetime, key: str) -> None:
        self.rnd, self.cal, self.now, self.key = rnd, cal, now, key
        self.commands: list[tuple[Actor, c.Command]] = []
        self.n = 0
        self.ended = False

    def at(self, t: datetime, hours: float) -> datetime:
        return self.cal.add_working_hours(t, hours)

    def add(self, actor: Actor, command_type: type[c.Command], when: datetime, **fields: Any) -> bool:
        if self.ended or when > self.now:
            self.ended = True
            return False
        self.n += 1
        self.commands.append((actor, command_type.build(occurred_at=when, command_id=f"{self.key}:{self.n}", **fields)))
        return True


def _directive_commands(now: datetime, settings: Settings, seed: int) -> Iterator[tuple[Actor, c.Command]]:
    pki = init_dev_pki(settings.pki_dir, now=START - timedelta(days=400))
    for symbol, title, issued in DIRECTIVES:
        document = f"{symbol}\n{title}\n(văn bản mẫu, demo seed {seed})\n".encode()
        bundle = sign_document(
            document,
            key_pem=pki.signer_key.read_bytes(),
            cert_chain_pem=pki.signer_cert.read_bytes(),
            now=datetime.combine(issued, datetime.min.time(), timezone.utc),
        )
        registered = datetime.combine(
            issued + timedelta(days=2 if symbol != "66-NQ/TW" else 6), datetime.min.time(), timezone.utc
        ) + timedelta(hours=2)
        if registered > now:
            continue
        yield (
            OFFICE,
            c.RegisterDirective.build(
                symbol=symbol,
                title=title,
                summary=f"Tóm tắt: {title.lower()}.",
                issued_on=issued,
                signer="Tổng Bí thư",
                issuing_body="Bộ Chính trị",
                presenting_body="Văn phòng Trung ương",
                confidentiality="regular",
                document_sha256=hashlib.sha256(document).hexdigest(),
                signature=bundle,
                occurred_at=registered,
                command_id=f"demo{seed}:directive:{symbol}",
            ),
        )


def _story(rnd: random.Random, cal: Calendar, now: datetime, seed: int, i: int) -> Story:
    symbol, _, issued = DIRECTIVES[i % len(DIRECTIVES)]
    key = f"demo{seed}:task:{i}"
    s = Story(rnd, cal, now, key)
    agencies = PROVINCES + CENTRAL
    agency = agencies[i % len(agencies)]
    kind = (
        AgencyKind.CENTRAL_BODY
        if agency in CENTRAL
        else (
            AgencyKind.MUNICIPAL_COMMITTEE
            if agency in ("HANOI", "HCMC", "HAIPHONG", "DANANG", "CANTHO", "HUE")
            else AgencyKind.PROVINCIAL_COMMITTEE
        )
    )
    monitor = rnd.choice([m for m in MONITORS if m != agency])
    start = datetime.combine(issued + timedelta(days=7 + rnd.randint(0, 20)), datetime.min.time(), timezone.utc)
    assigned = s.at(start, rnd.uniform(0, 16))
    deadline = None
    if rnd.random() > 0.25:
        deadline = (assigned + timedelta(days=rnd.choice([20, 45, 75, 120, 150, 240, 330]))).date()
    scope = rnd.choice(["national", "national", "sector", "regional"])
    s.add(
        OFFICE,
        c.AssignTask,
        assigned,
        directive_id=directive_id_for(symbol),
        content=f"{rnd.choice(WORK)} Nghị quyết {symbol} tại {agency}",
        assignee=agency,
        assignee_kind=kind,
        monitor=monitor,
        deadline=deadline,
        scope=scope,
        scope_name=None if scope == "national" else ("Giáo dục" if scope == "sector" else agency),
        priority=rnd.choice(["key", "regular", "regular", "urgent"]),
        update_every=rnd.choice(["month", "month", "quarter"]),
        ad_hoc=rnd.random() < 0.05,
    )
    task_id = task_id_for(f"{key}:1")
    t = assigned
    assignee = Actor(Role.ASSIGNEE, agency, "chuyenvien")
    if rnd.random() < 0.05:
        t = s.at(t, rnd.uniform(1, 3))
        new = rnd.choice([a for a in agencies if a not in (agency, monitor)])
        s.add(OFFICE, c.TransferTask, t, task_id=task_id, to=new, reason="Điều chỉnh đơn vị chủ trì")
        agency, assignee = new, Actor(Role.ASSIGNEE, new, "chuyenvien")
    approver = Actor(Role.APPROVER, agency, "lanhdao")
    late_receipt = rnd.random() < 0.12
    t = s.at(t, rnd.uniform(5, 30) if late_receipt else rnd.uniform(0.2, 3.5))
    s.add(assignee, c.ReceiveTask, t, task_id=task_id)
    if rnd.random() < 0.08:
        t = s.at(t, rnd.uniform(9, 14) if rnd.random() < 0.3 else rnd.uniform(1, 7))
        s.add(assignee, c.ObjectTask, t, task_id=task_id, reason="Nội dung vượt thẩm quyền của địa phương")
        t = s.at(t, rnd.uniform(2, 12))
        if rnd.random() < 0.5:
            s.add(OFFICE, c.ResolveObjection, t, task_id=task_id, accept=False, reason="Giữ nguyên giao nhiệm vụ")
        else:
            s.add(
                OFFICE,
                c.ResolveObjection,
                t,
                task_id=task_id,
                accept=True,
                changes={"content": f"{rnd.choice(WORK)} (điều chỉnh) {symbol}"},
                reason="Điều chỉnh nội dung",
            )
    if rnd.random() < 0.04:
        t = s.at(t, rnd.uniform(20, 200))
        s.add(OFFICE, c.CancelTask, t, task_id=task_id, reason="Nhiệm vụ được lồng ghép vào nhiệm vụ khác")
        return s
    percent, late = 0, rnd.random() < 0.3
    span = (datetime.combine(deadline, datetime.min.time(), timezone.utc) - t) if deadline else timedelta(days=300)
    step_days = max(7, span.days // rnd.randint(3, 5))
    extended = False
    while percent < 100 and not s.ended:
        t = t + timedelta(days=step_days * (1.6 if late else 1) * rnd.uniform(0.7, 1.2))
        t = s.at(t, 0)
        if rnd.random() < 0.1:
            s.add(
                Actor(Role.MONITOR, monitor, "theodoi"),
                c.UrgeTask,
                t,
                task_id=task_id,
                message="Đề nghị báo cáo tiến độ",
            )
            t = s.at(t, rnd.uniform(1, 8))
        percent = min(100, percent + rnd.choice([20, 25, 30, 35]))
        s.add(assignee, c.ReportProgress, t, task_id=task_id, percent=percent, note=f"Đã hoàn thành {percent}%")
        t = s.at(t, rnd.uniform(2, 20))
        if rnd.random() < 0.1:
            s.add(approver, c.ReturnProgress, t, task_id=task_id, reason="Bổ sung số liệu")
            t = s.at(t, rnd.uniform(4, 16))
            s.add(assignee, c.ReportProgress, t, task_id=task_id, percent=percent, note="Đã bổ sung số liệu")
            t = s.at(t, rnd.uniform(2, 10))
        s.add(approver, c.ApproveProgress, t, task_id=task_id)
        if late and deadline and not extended and rnd.random() < 0.3 and t.date() < deadline:
            t = s.at(t, 1)
            s.add(assignee, c.ReportDifficulty, t, task_id=task_id, causes="Thiếu kinh phí", proposals="Gia hạn")
            t = s.at(t, rnd.uniform(4, 24))
            s.add(
                OFFICE,
                c.ExtendDeadline,
                t,
                task_id=task_id,
                deadline=deadline + timedelta(days=60),
                reason="Theo đề xuất của địa phương",
                authority="Thường trực Ban Bí thư",
            )
            extended = True
    if s.ended:
        return s
    deadline_now = (deadline + timedelta(days=60)) if extended else deadline
    if deadline_now and t.date() > deadline_now:
        s.add(
            assignee, c.ExplainDelay, s.at(t, 0.5), task_id=task_id, explanation="Chậm do phải lấy ý kiến nhiều ngành"
        )
        t = s.at(t, 1)
    t = s.at(t, rnd.uniform(1, 8))
    s.add(assignee, c.CompleteTask, t, task_id=task_id, result="Đã ban hành kế hoạch và tổ chức thực hiện")
    if rnd.random() < 0.5:
        grade = rnd.choice(["excellent", "completed", "completed", "not_fully_completed"])
        s.add(OFFICE, c.EvaluateTask, s.at(t, rnd.uniform(8, 40)), task_id=task_id, grade=grade)
    if rnd.random() < 0.03:
        s.add(
            INSPECTOR,
            c.RaiseFinding,
            s.at(t, rnd.uniform(40, 80)),
            task_id=task_id,
            kind="data_error",
            description="Số liệu báo cáo chưa khớp với hồ sơ",
        )
    return s


def demo_commands(ledger: TaskLedger, settings: Settings, tasks: int, seed: int) -> list[tuple[Actor, c.Command]]:
    now = ledger.clock()
    rnd = random.Random(seed)
    cal = ledger.calendars.current
    commands = list(_directive_commands(now, settings, seed))
    for i in range(tasks):
        commands.extend(_story(rnd, cal, now, seed, i).commands)
    return commands


def load_demo(ledger: TaskLedger, settings: Settings, *, tasks: int, seed: int, progress: bool) -> dict[str, Any]:
    """Execute the demo's commands in atomic batches, with a progress bar."""
    from rich.progress import Progress

    commands = demo_commands(ledger, settings, tasks, seed)
    ledger.trusted_roots = read_trusted_roots([settings.pki_dir / "trusted_roots.pem"])
    appended = duplicates = 0
    with Progress(disable=not progress, transient=False) as bar:
        job = bar.add_task("loading demo commands", total=len(commands))
        for start in range(0, len(commands), BATCH):
            chunk = commands[start : start + BATCH]
            for result in ledger.execute_batch(chunk):
                duplicates += result.duplicate
                appended += not result.duplicate
            bar.advance(job, len(chunk))
    sealed = 0
    if settings.audit_checkpoint_every:
        from connectors.audit_integrity import maybe_checkpoint

        sealed = len(maybe_checkpoint(ledger, settings.audit_checkpoint_every, pki_dir=settings.pki_dir) or [])
    return {
        "commands": len(commands),
        "appended": appended,
        "duplicates": duplicates,
        "directives": len({cmd.symbol for _, cmd in commands if isinstance(cmd, c.RegisterDirective)}),
        "tasks": tasks,
        "checkpoints_sealed": sealed,
    }
