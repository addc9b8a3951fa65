"""docker/compose.yaml's topology as processes on this machine: migrations once, then two ``coordbot run`` on
one PostgreSQL database, against the fake Bot API (real HTTP). The first instance polls for updates, the
second only sends (Telegram serves one poller per token), both run the reminder clock and serve the desk.

Checked as an operator would: each instance's start-up line, the desk and ``/metrics`` on each, every due
reminder received by the chats exactly once (counted on the fake server), an update handled by the polling
instance with its id in the JSON log, and a clean stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from coordbot.core.db import make_engine, row_id, session_scope
from coordbot.plan.models import Contact, Department, Task
from coordbot.scheduling.models import ReminderKind, ReminderOccurrence
from coordbot.scheduling.outbox import add_occurrence
from coordbot.testing.fake_telegram import FakeBotAPI
from tests.conftest import DATA, PG_ADMIN_URL

pytestmark = pytest.mark.slow
TOKEN = "424243:TOPOLOGY-two-instances"
CONTACTS = 240  # more than one claim batch (200): both instances have due rows to claim at once
OFFICE_CHAT, STRANGER = 29_999, 39_999
HOLIDAYS = Path(__file__).resolve().parents[2] / "config" / "holidays"
WEB_SECRET = "topology-shared-desk-key-0123456789abcdef"


def _admin(sql: str) -> None:
    admin = make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(sql))
    admin.dispose()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """An empty PostgreSQL database (not migrated: the migration step is part of the topology)."""
    name = f"coordbot_topology_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(url: str, server: FakeBotAPI, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    env.update(
        PYTHONIOENCODING="utf-8",
        COORDBOT_CONFIG=str(tmp / "none.yaml"),
        COORDBOT_DATABASE_URL=url,
        COORDBOT_TELEGRAM_TOKEN=TOKEN,
        COORDBOT_TELEGRAM_BASE_URL=server.base_url,
        COORDBOT_HOLIDAYS_DIR=str(HOLIDAYS),
        COORDBOT_TICK_SECONDS="0.5",
        COORDBOT_HANDLER_PROCESSES="0",
        COORDBOT_TELEGRAM_RATE_PER_SECOND="15",  # two instances together within Telegram's 30/s
        COORDBOT_WEB_SECRET=WEB_SECRET,
        COORDBOT_OUTPUT_DIR=str(tmp / "out"),
        **extra,
    )
    return env


async def _run_once(*args: str, env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coordbot", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, f"coordbot {' '.join(args)}: {err.decode()[-2000:]}"
    return out.decode()


def _seed(url: str, server: FakeBotAPI) -> None:
    """Bound contacts with one message each queued through the outbox (as escalations and notices are),
    due a minute ago (within the catch-up grace)."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        contacts = [Contact(department_id=amr.id, name=f"c{i}", address=str(20_000 + i)) for i in range(CONTACTS)]
        office = Contact(department_id=amr.id, name="office", role="office", address=str(OFFICE_CHAT))
        s.add_all([*contacts, office])
        s.flush()
        for c in [*contacts, office]:
            server.add_user(int(c.address or 0), f"user{c.address}")
        for c in contacts:
            add_occurrence(
                session=s,
                contact_id=row_id(c),
                kind=ReminderKind.NOTICE,
                fire_at=now - timedelta(minutes=1),
                task_id=task.id,
                plan_id=task.plan_id,
                body=f"任务1.1 请报送进展（{c.name}）",
            )
    engine.dispose()


def _due_rows(url: str) -> list[ReminderOccurrence]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.fire_at <= datetime.now(UTC))).all()
    engine.dispose()
    return list(rows)


async def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(predicate):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def _metric(body: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class _Instance:
    def __init__(self, name: str, tmp: Path, env: dict[str, str], port: int, *args: str) -> None:
        self.name, self.port, self.env, self.args = name, port, env, args
        self.stdout, self.stderr = tmp / f"{name}.out", tmp / f"{name}.err"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "coordbot", *self.args, "run", env=self.env, stdout=out, stderr=err
            )

    def said(self) -> str:
        return self.stdout.read_text(encoding="utf-8") if self.stdout.exists() else ""

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8") if self.stderr.exists() else ""

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout=30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None


async def test_two_instances_share_one_database_like_the_compose_file(fresh_pg: str, tmp_path: Path) -> None:
    async with FakeBotAPI(token=TOKEN) as server, aiohttp.ClientSession() as http:
        base = _env(fresh_pg, server, tmp_path)
        # The compose file's one-shot service: the schema, then the plan.
        said = await _run_once("db", "upgrade", env=base)
        assert "database at revision" in said
        said = await _run_once("plan", "import", str(DATA / "plans" / "minimal.yaml"), env=base)
        assert "created" in said
        _seed(fresh_pg, server)
        server.add_user(STRANGER, "stranger")

        ports = _free_port(), _free_port()
        first = _Instance(
            "bot-1",
            tmp_path,
            {
                **base,
                "COORDBOT_TELEGRAM_MODE": "polling",
                "COORDBOT_WEB_HOST": "0.0.0.0",
                "COORDBOT_WEB_PORT": str(ports[0]),
            },
            ports[0],
            "-v",
            "--log-format",
            "json",
        )
        second = _Instance(
            "bot-2",
            tmp_path,
            {
                **base,
                "COORDBOT_TELEGRAM_MODE": "send",
                "COORDBOT_WEB_PORT": str(ports[1]),
                "COORDBOT_LOG_FORMAT": "json",
            },
            ports[1],
        )
        instances = (first, second)
        try:
            await asyncio.gather(*(i.start() for i in instances))

            async def healthy(i: _Instance) -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{i.port}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    assert i.proc is not None and i.proc.returncode is None, i.log()[-3000:]
                    return False

            deadline = asyncio.get_running_loop().time() + 60
            for i in instances:
                while not await healthy(i):
                    assert asyncio.get_running_loop().time() < deadline, f"{i.name} did not come up: {i.log()[-3000:]}"
                    await asyncio.sleep(0.2)

            # Every due reminder sent, then an update to the polling instance.
            await _wait(lambda: all(r.status == "sent" for r in _due_rows(fresh_pg)), 60, "the due reminders")
            server.user_sends(STRANGER, "/start NOSUCHINVITE123")
            await server.wait_for_messages(chat_id=STRANGER, count=1, timeout=20)

            pages = {}
            for i in instances:
                async with http.get(
                    f"http://127.0.0.1:{i.port}/login", headers={"X-Request-ID": f"probe-{i.name}"}
                ) as r:
                    pages[i.name] = (r.status, await r.text(), r.headers.get("X-Request-ID"))
                async with http.get(f"http://127.0.0.1:{i.port}/metrics") as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                    pages[i.name + "/metrics"] = (r.status, await r.text(), None)
            # One poller: no 409. (Checked before the stop: PTB's last getUpdates on stopping ends its own poll.)
            conflicts = server.calls_to("getUpdates", status=409)
        finally:
            codes = [await i.stop() for i in instances]

        assert codes == [0, 0], [i.log()[-2000:] for i in instances]
        for i, mode in ((first, "telegram polling"), (second, "telegram send")):
            assert f"coordbot starting: {mode}; database postgresql+psycopg://" in i.said(), i.said()
        assert f"web desk http://0.0.0.0:{ports[0]}" in first.said()

        # The desk on both, the request id echoed.
        for i in instances:
            status, body, rid = pages[i.name]
            assert status == 200 and 'name="password"' in body and rid == f"probe-{i.name}"

        # Exactly once: each seeded chat got one reminder, and every due row is sent with a message the fake has.
        rows = _due_rows(fresh_pg)
        assert len(rows) >= CONTACTS and {r.status for r in rows} == {"sent"}
        seeded = {20_000 + n for n in range(CONTACTS)}
        texts = Counter((m["chat"]["id"], m["text"]) for m in server.sent_messages() if m["chat"]["id"] in seeded)
        per_chat = Counter(chat for chat, _ in texts.elements())
        assert set(texts.values()) == {1}, "a reminder arrived twice"
        assert set(per_chat) == seeded
        sent_rows = Counter(
            int(r.message_ref.split(":")[0]) for r in rows if r.message_ref and r.folded_into_id is None
        )
        assert {c: n for c, n in sent_rows.items() if c in seeded} == dict(per_chat)
        server_refs = {f"{m['chat']['id']}:{m['message_id']}" for m in server.sent_messages()}
        assert {r.message_ref for r in rows if r.message_ref} <= server_refs

        # /metrics: the two instances' sent counters add up to the rows sent; only the poller took the update.
        sent = [_metric(pages[i.name + "/metrics"][1], "coordbot_reminders_total", outcome="sent") for i in instances]
        assert sum(sent) == len([r for r in rows if r.message_ref]), sent
        inbound = [_metric(pages[i.name + "/metrics"][1], "coordbot_inbound_updates_total") for i in instances]
        assert inbound[0] >= 1 and inbound[1] == 0, inbound
        assert not conflicts

        # JSON logs, one object a line, the update's id on the line its handling wrote.
        for i in instances:
            lines = [json.loads(ln) for ln in i.log().splitlines() if ln.strip()]
            assert all({"time", "level", "logger", "message"} <= set(o) for o in lines)
        handled = [json.loads(ln) for ln in first.log().splitlines() if "binding refused" in ln]
        assert handled and handled[0]["channel"] == "telegram" and handled[0]["update_id"].isdigit(), first.log()[
            -2000:
        ]
        assert TOKEN not in first.log() + second.log() and "NOSUCHINVITE123" not in first.log()
