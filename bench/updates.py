"""Inbound-update benchmark: coordbot's Telegram front end end to end, against a bare PTB echo bot.

Run: .venv/bin/python bench/updates.py [--contacts 50] [--updates 1000] [--rounds 3] [--samples 200]
     [--postgres URL | --no-postgres] [--handler-processes N]

Everything goes over real HTTP through the fake Bot API server (``coordbot.testing.fake_telegram``), which runs
in a process of its own (the same one for every bot measured, so it never shares the bots' core or GIL), with
its flood limits off and coordbot's own limiter opened up, so what is measured is the handling:

* throughput (polling): M updates (progress replies and commands from N bound contacts) are queued at once;
  the server's clock runs from the first update queued to the last answer it received. Each one is received,
  de-duplicated and stored, understood, applied and answered by coordbot; the baseline, a bare PTB echo bot
  (same PTB set-up: polling, 8 concurrent updates), answers every message with its text. The echo bot and
  coordbot (on SQLite, then on PostgreSQL) are alternated ``--rounds`` times, a fresh database each time; the
  ratio is taken per round (against that round's echo run) and its median and range printed. Targets:
  >= 0.8x echo on SQLite and PostgreSQL (issue 19); >= 0.5x on PostgreSQL (issue 13).
  coordbot runs as configured by default (``--handler-processes N`` overrides where its conversation runs).
* latency (webhook): one update at a time, from the server's inject to the answer arriving at it; p50 / p99.
  Target: p99 < 50 ms on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
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


# ---- the fake Bot API in a process of its own, driven over a small control API ---------------------------


async def serve_fake(contacts: int, port_file: str) -> None:
    """The server process: the fake Bot API and a control app that queues bursts and times their answers."""
    from aiohttp import web

    answered: list[float] = []  # monotonic times of the answers the server accepted
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        for i in range(contacts):
            server.add_user(FIRST_USER + i, f"联络员{i}")

        def hook(method: str, params: Any, status: int, body: Any) -> None:
            if method.lower() == "sendmessage" and status == 200:
                answered.append(time.monotonic())

        server.response_hooks.append(hook)

        async def push(request: web.Request) -> web.Response:
            """Queue ``updates`` messages at once; answer with the seconds until each was answered."""
            n = int((await request.json())["updates"])
            before, started = len(answered), time.monotonic()
            for k in range(n):
                server.user_sends(FIRST_USER + k % contacts, MESSAGES[k % len(MESSAGES)])
            await server.wait_for(lambda: len(answered) - before >= n, timeout=600)
            return web.json_response({"seconds": answered[before + n - 1] - started})

        async def latency(request: web.Request) -> web.Response:
            """One update at a time: milliseconds from inject to its answer (the first 20 warm up)."""
            n = int((await request.json())["samples"])
            out = []
            for k in range(n + 20):
                before, t0 = len(answered), time.monotonic()
                server.user_sends(FIRST_USER + k % contacts, MESSAGES[k % len(MESSAGES)])
                await server.wait_for(lambda b=before: len(answered) > b, timeout=30)  # type: ignore[misc]
                if k >= 20:
                    out.append((answered[before] - t0) * 1000)
            return web.json_response({"ms": out})

        async def info(request: web.Request) -> web.Response:
            return web.json_response({"base_url": server.base_url})

        app = web.Application()
        app.add_routes([web.post("/push", push), web.post("/latency", latency), web.get("/info", info)])
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        Path(port_file).write_text(str(port))
        try:
            await asyncio.Event().wait()  # until the benchmark terminates this process
        finally:
            await runner.cleanup()


class FakeServer:
    """The benchmark's handle on the server process."""

    def __init__(self, control: str, base_url: str) -> None:
        self.control, self.base_url = control, base_url

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        import aiohttp

        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http,
            http.post(self.control + path, json=payload) as resp,
        ):
            resp.raise_for_status()
            return await resp.json()

    async def push(self, updates: int) -> float:
        return float((await self._post("/push", {"updates": updates}))["seconds"])

    async def latency(self, samples: int) -> list[float]:
        return list((await self._post("/latency", {"samples": samples}))["ms"])


@contextlib.asynccontextmanager
async def fake_server_process(contacts: int) -> AsyncIterator[FakeServer]:
    import aiohttp

    with tempfile.TemporaryDirectory() as tmp:
        port_file = f"{tmp}/port"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-fake", port_file, "--contacts", str(contacts)
        )
        try:
            for _ in range(600):
                if Path(port_file).exists() and Path(port_file).read_text():
                    break
                if proc.returncode is not None:
                    raise RuntimeError("the fake Bot API process stopped")
                await asyncio.sleep(0.05)
            control = f"http://127.0.0.1:{Path(port_file).read_text()}"
            async with aiohttp.ClientSession() as http, http.get(control + "/info") as resp:
                base_url = (await resp.json())["base_url"]
            yield FakeServer(control, base_url)
        finally:
            proc.terminate()
            await proc.wait()


HANDLER_PROCESSES = Settings().handler_processes  # the default, unless --handler-processes says otherwise


def settings(url: str, server: FakeServer, **overrides: Any) -> Settings:
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


async def coordbot_throughput(server: FakeServer, url: str, engine: Engine, updates: int) -> float:
    runtime = make_runtime(settings(url, server), engine, clock=FakeClock(time_now()))
    frontend = TelegramFrontend(runtime.settings, runtime.handle)
    frontend.flood = UNLIMITED_FLOOD()  # 1,000 updates from 50 chats at once is a flood by design here
    runner = runtime.conversation_runner()
    await runner.start()
    await frontend.start()
    try:
        await server.push(min(updates, 40))  # warm up: connections, caches, first queries
        ready = getattr(runner, "ready", None)  # a runner that starts its workers on demand: let them come up
        if ready is not None:
            await ready()
        return updates / await server.push(updates)
    finally:
        await frontend.stop()
        await runtime.close()


async def echo_throughput(server: FakeServer, updates: int) -> float:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        await context.bot.send_message(update.effective_chat.id, update.effective_message.text or "?")

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
        await server.push(min(updates, 40))
        return updates / await server.push(updates)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def webhook_latency(server: FakeServer, url: str, engine: Engine, samples: int) -> list[float]:
    """Milliseconds from inject to the answer reaching the server, one update at a time."""
    port = _free_port()
    s = settings(url, server, telegram_mode="webhook", webhook_url=f"http://127.0.0.1:{port}", web_port=port)
    runtime = make_runtime(s, engine, clock=FakeClock(time_now()))
    frontend = TelegramFrontend(runtime.settings, runtime.handle)
    frontend.flood = UNLIMITED_FLOOD()
    site = await start_site(make_web_app(frontend.webhook_routes()), "127.0.0.1", port)
    await runtime.conversation_runner().start()
    await frontend.start()
    try:
        return await server.latency(samples)
    finally:
        await site.cleanup()
        await frontend.stop()
        await runtime.close()


def time_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}x (range {min(values):.2f}-{max(values):.2f})"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=50, help="bound contacts sending (default 50)")
    parser.add_argument("--updates", type=int, default=1000, help="updates pushed for throughput (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of echo and coordbot (default 3)")
    parser.add_argument("--samples", type=int, default=200, help="webhook latency samples (default 200)")
    parser.add_argument("--postgres", metavar="URL", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--handler-processes",
        type=int,
        default=Settings().handler_processes,
        help=f"coordbot's worker processes for the conversation, 0: a thread (default {Settings().handler_processes})",
    )
    parser.add_argument("--serve-fake", metavar="PORT_FILE", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args(argv)
    if args.serve_fake:
        await serve_fake(args.contacts, args.serve_fake)
        return 0
    global HANDLER_PROCESSES
    HANDLER_PROCESSES = args.handler_processes
    logging.basicConfig(level=logging.ERROR)
    telegram_module.TelegramRateLimiter = UNLIMITED  # type: ignore[misc,assignment]
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if not args.no_postgres:
        backends.append(("postgresql", args.postgres))

    echo: list[float] = []
    rates: dict[str, list[float]] = {name: [] for name, _ in backends}
    ratios: dict[str, list[float]] = {name: [] for name, _ in backends}
    latency: dict[str, list[float]] = {}
    async with fake_server_process(args.contacts) as server:
        for r in range(args.rounds):
            e = await echo_throughput(server, args.updates)
            echo.append(e)
            line = f"round {r + 1}: echo {e:6.0f}/s"
            for name, pg in backends:
                with database(pg) as (url, engine):
                    seed(engine, args.contacts)
                    rate = await coordbot_throughput(server, url, engine, args.updates)
                rates[name].append(rate)
                ratios[name].append(rate / e)
                line += f"   coordbot {name} {rate:6.0f}/s ({rate / e:.2f}x)"
            print(line, flush=True)
        for name, pg in backends:
            with database(pg) as (url, engine):
                seed(engine, args.contacts)
                latency[name] = await webhook_latency(server, url, engine, args.samples)

    where = f"{args.handler_processes} worker process(es)" if args.handler_processes else "a thread"
    print(f"\ninbound updates: {args.updates} from {args.contacts} contacts; fake Bot API in its own process")
    print(f"coordbot's conversation: handler_processes={args.handler_processes} ({where}); {args.rounds} rounds")
    print(
        f"  bare PTB echo bot (baseline)  median {statistics.median(echo):6.0f} updates/s "
        f"(range {min(echo):.0f}-{max(echo):.0f})"
    )
    for name, _ in backends:
        rs, xs = rates[name], ratios[name]
        mid = statistics.median(xs)
        line = (
            f"  coordbot polling, {name:<11} median {statistics.median(rs):6.0f} updates/s   {spread(xs)} echo"
            f"   issue 19 (>= 0.8x): {'met' if mid >= 0.8 else 'NOT met'}"
        )
        if name == "postgresql":
            line += f"; issue 13 (>= 0.5x): {'met' if mid >= 0.5 else 'NOT met'}"
        print(line)
    print(f"\nwebhook latency, inject -> answer at the server ({args.samples} samples, one at a time)")
    for name, _ in backends:
        lat = latency[name]
        line = f"  coordbot webhook, {name:<11} p50 {pct(lat, 0.5):6.1f} ms   p99 {pct(lat, 0.99):6.1f} ms"
        if name == "sqlite":
            line += f"   (target p99 < 50 ms: {'met' if pct(lat, 0.99) < 50 else 'NOT met'})"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
