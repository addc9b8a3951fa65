"""Inbound-update benchmark: coordbot's Telegram front end end to end, against a bare PTB echo bot.

Run: .venv/bin/python bench/updates.py [--contacts 50] [--updates 1000] [--samples 200] [--postgres URL]
     [--handler-processes N]

Everything goes over real HTTP through the fake Bot API server (``coordbot.testing.fake_telegram``) with its
flood limits off, and coordbot's own limiter opened up, so what is measured is the handling:

* throughput (polling): M updates (progress replies and commands from N bound contacts) are queued at once;
  the clock runs from the first update queued to the last answer received by the server. Each one is
  received, de-duplicated and stored, understood, applied and answered. The same-run baseline is a bare PTB
  echo bot (same PTB set-up: polling, 8 concurrent updates) answering every message with its text.
  Target: coordbot >= 0.5x the echo bot. coordbot runs as configured by default: its conversation in a
  worker process (``--handler-processes 0`` measures it in a thread of the main process instead).
* latency (webhook): one update at a time, from ``inject`` to the answer arriving at the fake server;
  p50 / p99. Target: p99 < 50 ms on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlmodel import select  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

import coordbot.channels.telegram as telegram_module  # noqa: E402
from coordbot.channels.ratelimit import TelegramRateLimiter  # noqa: E402
from coordbot.channels.telegram import FloodGate, TelegramFrontend  # noqa: E402
from coordbot.core.clock import FakeClock  # noqa: E402
from coordbot.core.config import Secret, Settings  # noqa: E402
from coordbot.core.db import make_engine, session_scope, upgrade  # noqa: E402
from coordbot.plan import service  # noqa: E402
from coordbot.plan.loader import load_plan_file  # noqa: E402
from coordbot.plan.models import Contact, Department  # noqa: E402
from coordbot.runtime import make_runtime  # noqa: E402
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits  # noqa: E402
from coordbot.web.app import make_web_app, start_site  # noqa: E402

TOKEN = "123456:BENCH-token"
PLAN = ROOT / "tests" / "data" / "plans" / "minimal.yaml"
HOLIDAYS = ROOT / "config" / "holidays"
FIRST_USER = 10_000
SECRET = "bench-secret"
# What contacts send: progress replies (parsed, stored, applied) and commands (read-only answers).
MESSAGES = ("2.1 本周开展双随机检查1项", "/tasks", "2.2 本周新增试点示范单位1家，正常推进", "/whoami")

# coordbot's own limiter with the limits opened up: the fake server's limits are off too.
UNLIMITED = functools.partial(TelegramRateLimiter, overall_per_second=1e6, chat_interval=1e-6, group_per_minute=1e9)
UNLIMITED_FLOOD = functools.partial(FloodGate, burst=1 << 30)  # no per-chat flood limit on inbound


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def database(postgres: str | None) -> Any:
    """A migrated database with the minimal plan: a temporary SQLite file, or a scratch PostgreSQL database."""
    if postgres is None:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            engine = make_engine(url)
            upgrade(engine)
            yield url, engine
            engine.dispose()
        return
    name = f"coordbot_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(postgres).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield url, engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(engine: Engine, contacts: int) -> None:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=load_plan_file(PLAN))
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        for i in range(contacts):
            s.add(Contact(department_id=amr.id, name=f"联络员{i}", role="contact", address=str(FIRST_USER + i)))


@contextlib.asynccontextmanager
async def fake_server(contacts: int) -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        for i in range(contacts):
            server.add_user(FIRST_USER + i, f"联络员{i}")
        yield server


def answers(server: FakeBotAPI) -> Callable[[], int]:
    """A counter of the messages the server accepted (a response hook: no copying of the message store)."""
    count = [0]

    def hook(method: str, params: Any, status: int, body: Any) -> None:
        if method.lower() == "sendmessage" and status == 200:
            count[0] += 1

    server.response_hooks.append(hook)
    return lambda: count[0]


async def push(server: FakeBotAPI, contacts: int, updates: int) -> float:
    """Queue ``updates`` messages at once; seconds until the server has received an answer to each."""
    count = getattr(server, "_bench_answers", None) or answers(server)
    server._bench_answers = count  # type: ignore[attr-defined]
    before = count()
    started = time.perf_counter()
    for n in range(updates):
        server.user_sends(FIRST_USER + n % contacts, MESSAGES[n % len(MESSAGES)])
    await server.wait_for(lambda: count() - before >= updates, timeout=600)
    return time.perf_counter() - started


HANDLER_PROCESSES = Settings().handler_processes  # the default, unless --handler-processes says otherwise


def settings(url: str, server: FakeBotAPI, **overrides: Any) -> Settings:
    return Settings(
        handler_processes=HANDLER_PROCESSES,
        database_url=url,
        holidays_dir=HOLIDAYS,
        telegram_token=Secret(TOKEN),
        telegram_base_url=server.base_url,
        webhook_secret=Secret(SECRET),
        # The front end passes this to its limiter as overall_per_second, which overrides UNLIMITED's own
        # value: without it coordbot stays capped at Telegram's 30 messages/s while the echo bot is not.
        telegram_rate_per_second=1e6,
        **overrides,
    )


async def coordbot_throughput(url: str, engine: Engine, contacts: int, updates: int) -> float:
    async with fake_server(contacts) as server:
        runtime = make_runtime(settings(url, server), engine, clock=FakeClock(time_now()))
        frontend = TelegramFrontend(runtime.settings, runtime.handle)
        frontend.flood = UNLIMITED_FLOOD()  # 1,000 updates from 50 chats at once is a flood by design here
        await runtime.conversation_runner().start()
        await frontend.start()
        try:
            await push(server, contacts, min(updates, 40))  # warm up: connections, caches, first queries
            return updates / await push(server, contacts, updates)
        finally:
            await frontend.stop()
            await runtime.close()


async def echo_throughput(contacts: int, updates: int) -> float:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        await context.bot.send_message(update.effective_chat.id, update.effective_message.text or "?")

    async with fake_server(contacts) as server:
        app = (
            ApplicationBuilder()
            .token(TOKEN)
            .base_url(server.base_url)
            .rate_limiter(UNLIMITED())
            .concurrent_updates(8)
            .build()
        )
        app.add_handler(MessageHandler(filters.ALL, echo))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=10)
        try:
            await push(server, contacts, min(updates, 40))
            return updates / await push(server, contacts, updates)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()


async def webhook_latency(url: str, engine: Engine, contacts: int, samples: int) -> list[float]:
    """Milliseconds from inject to the answer reaching the server, one update at a time."""
    async with fake_server(contacts) as server:
        port = _free_port()
        s = settings(url, server, telegram_mode="webhook", webhook_url=f"http://127.0.0.1:{port}", web_port=port)
        runtime = make_runtime(s, engine, clock=FakeClock(time_now()))
        frontend = TelegramFrontend(runtime.settings, runtime.handle)
        frontend.flood = UNLIMITED_FLOOD()
        runner = await start_site(make_web_app(frontend.webhook_routes()), "127.0.0.1", port)
        await runtime.conversation_runner().start()
        await frontend.start()
        out: list[float] = []
        try:
            for n in range(samples + 20):
                calls = len(server.calls_to("sendMessage"))
                t0 = time.monotonic()
                server.user_sends(FIRST_USER + n % contacts, MESSAGES[n % len(MESSAGES)])
                await server.wait_for(lambda c=calls: len(server.calls_to("sendMessage")) > c, timeout=30)  # type: ignore[misc]
                if n >= 20:  # the first ones warm up
                    out.append((server.calls_to("sendMessage")[calls].t - t0) * 1000)
        finally:
            await runner.cleanup()
            await frontend.stop()
            await runtime.close()
        return out


def time_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_backend(name: str, postgres: str | None, args: argparse.Namespace, echo: float) -> dict[str, Any]:
    with database(postgres) as (url, engine):
        seed(engine, args.contacts)
        rate = await coordbot_throughput(url, engine, args.contacts, args.updates)
    with database(postgres) as (url, engine):
        seed(engine, args.contacts)
        lat = await webhook_latency(url, engine, args.contacts, args.samples)
    return {"backend": name, "rate": rate, "ratio": rate / echo, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=50, help="bound contacts sending (default 50)")
    parser.add_argument("--updates", type=int, default=1000, help="updates pushed for throughput (default 1000)")
    parser.add_argument("--samples", type=int, default=200, help="webhook latency samples (default 200)")
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL server (scratch database)")
    parser.add_argument(
        "--handler-processes",
        type=int,
        default=Settings().handler_processes,
        help=f"coordbot's worker processes for the conversation, 0: a thread (default {Settings().handler_processes})",
    )
    args = parser.parse_args(argv)
    global HANDLER_PROCESSES
    HANDLER_PROCESSES = args.handler_processes
    logging.basicConfig(level=logging.ERROR)
    telegram_module.TelegramRateLimiter = UNLIMITED  # type: ignore[misc,assignment]

    echo = await echo_throughput(args.contacts, args.updates)
    results = [await run_backend("sqlite", None, args, echo)]
    if args.postgres:
        results.append(await run_backend("postgresql", args.postgres, args, echo))

    where = f"{args.handler_processes} worker process(es)" if args.handler_processes else "a thread"
    print(f"\ninbound updates: {args.updates} from {args.contacts} contacts; fake Bot API, rate limits off")
    print(f"coordbot's conversation runs in {where} (setting handler_processes)")
    print(f"  bare PTB echo bot (baseline)      {echo:8.0f} updates/s")
    for r in results:
        print(
            f"  coordbot polling, {r['backend']:<15} {r['rate']:8.0f} updates/s   {r['ratio']:.2f}x echo"
            f"   (target >= 0.5x: {'met' if r['ratio'] >= 0.5 else 'NOT met'})"
        )
    print(f"\nwebhook latency, inject -> answer at the server ({args.samples} samples, one at a time)")
    ok = True
    for r in results:
        line = f"  coordbot webhook, {r['backend']:<15} p50 {r['p50']:6.1f} ms   p99 {r['p99']:6.1f} ms"
        if r["backend"] == "sqlite":
            met = r["p99"] < 50
            ok = ok and met
            line += f"   (target p99 < 50 ms: {'met' if met else 'NOT met'})"
        print(line)
    ok = ok and all(r["ratio"] >= 0.5 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
