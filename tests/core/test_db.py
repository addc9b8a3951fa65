"""SQLite's writer gate: threads queue on a lock, processes on a file lock beside the database."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from sqlalchemy import text

from coordbot.core.db import _WriterGate, make_engine


def test_the_file_lock_excludes_another_holder_and_hands_over_on_release(tmp_path: Path) -> None:
    # Two gates on one path hold separate open files, so they exclude each other as two processes would.
    path = str(tmp_path / "x.db")
    first, second = _WriterGate(path), _WriterGate(path)
    assert first.lock_file(time.monotonic() + 5)
    assert Path(path + "-writer.lock").exists()
    assert not second.lock_file(time.monotonic() + 0.2)  # held: gives up at its deadline

    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(second.lock_file(time.monotonic() + 30)))
    waiter.start()
    first.unlock_file()
    waiter.join(timeout=30)
    assert waited == [True]  # handed over when released, well before its deadline
    second.unlock_file()


def test_a_wait_given_up_leaves_the_lock_free(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    holder, quitter, later = _WriterGate(path), _WriterGate(path), _WriterGate(path)
    assert holder.lock_file(time.monotonic() + 5)
    assert not quitter.lock_file(time.monotonic() + 0.1)
    holder.unlock_file()
    # The quitter's helper may take the lock after the release; it lets go at once, as nobody waits for it.
    assert later.lock_file(time.monotonic() + 10)
    later.unlock_file()


def _write_rows(url: str, start: int, count: int) -> None:
    engine = make_engine(url)
    for i in range(start, start + count):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": i})
            time.sleep(0.001)  # a transaction that does some work while it holds the lock
    engine.dispose()


def test_two_processes_writing_back_to_back_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_rows, args=(url, n * 1000, 150)) for n in range(2)]
    for w in workers:
        w.start()
    _write_rows(url, 5000, 150)  # and this process's threads' gate at the same time
    for w in workers:
        w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    with engine.connect() as conn:
        values = sorted(v for (v,) in conn.execute(text("SELECT v FROM t")))
    assert values == [*range(150), *range(1000, 1150), *range(5000, 5150)]
    engine.dispose()
