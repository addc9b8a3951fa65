"""`coordbot briefing --send`: the file reaches the office and the leaders through Telegram (fake server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.cli import main
from coordbot.core.db import session_scope
from coordbot.core.events import Event
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department
from coordbot.reports.models import Briefing
from coordbot.testing.fake_telegram import FakeBotAPI

TOKEN = "555:SEND-BRIEFING"


async def test_briefing_is_sent_to_office_and_leaders_only(
    engine: Engine, db_url: str, minimal_plan: LoadedPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add_all(
            [
                Contact(department_id=amr.id, name="办公室", role="office", address="9000"),
                Contact(department_id=amr.id, name="分管领导", role="leader", address="9001"),
                Contact(department_id=amr.id, name="联络员", role="contact", address="9002"),
            ]
        )
    async with FakeBotAPI(token=TOKEN) as server:
        for uid in (9000, 9001, 9002):
            server.add_user(uid, f"u{uid}")
        for key, value in {
            "COORDBOT_DATABASE_URL": db_url,
            "COORDBOT_CONFIG": str(tmp_path / "none.yaml"),
            "COORDBOT_TELEGRAM_TOKEN": TOKEN,
            "COORDBOT_TELEGRAM_BASE_URL": server.base_url,
        }.items():
            monkeypatch.setenv(key, value)
        out = tmp_path / "briefing.md"
        args = ["briefing", "--meeting-date", "2026-03-27", "--format", "md", "--out", str(out), "--send"]
        # The command runs its own event loop; the fake server runs on this one.
        result = await asyncio.to_thread(CliRunner().invoke, main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "sent to 2: 办公室, 分管领导" in result.output
        docs = {d["chat_id"]: d for d in server.documents}
        assert set(docs) == {9000, 9001}  # not the contact
        assert docs[9000]["content"] == out.read_bytes()
        assert docs[9000]["file_name"] == "briefing.md"
        captions = [m.get("text", "") for m in server.sent_messages(9000)]
        assert any("联席会议简报（2026-03-27）" in c for c in captions)
    with Session(engine) as s:
        assert s.exec(select(Briefing)).one().sent_at is not None
        [sent] = s.exec(select(Event).where(Event.type == "report.sent")).all()
        assert sent.payload["recipients"] == ["办公室", "分管领导"]
