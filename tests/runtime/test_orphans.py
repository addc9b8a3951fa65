"""Worker processes die with the main process (issue 17, item 4): a SIGKILLed ``coordbot run`` cannot shut its
pool down, and its conversation workers used to live on, orphaned, holding database connections."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PARENT = """
import asyncio, sys, time
from pathlib import Path
from coordbot.runtime.workers import ProcessRunner, WorkerConfig

async def main():
    config = WorkerConfig(database_url=sys.argv[1], holidays_dir=Path(sys.argv[3]), timezone="Asia/Shanghai",
                          locale="zh")
    runner = ProcessRunner(config, 2)
    await runner.start()
    Path(sys.argv[2]).write_text(" ".join(str(pid) for pid in runner._pool._processes))
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may never reap what it inherits)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_end_when_the_main_process_is_killed(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    db_url = f"sqlite:///{tmp_path / 'orphans.db'}"
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PARENT), db_url, str(pids_file), str(ROOT / "config" / "holidays")],
        cwd=ROOT,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (pids_file.exists() and pids_file.read_text()):
            assert parent.poll() is None, "the parent script ended before starting its workers"
            assert time.monotonic() < deadline, "the workers did not start within 60 s"
            time.sleep(0.1)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        killed = time.monotonic()
        while any(_alive(p) for p in pids) and time.monotonic() < killed + 5:
            time.sleep(0.02)
        assert [p for p in pids if _alive(p)] == [], "worker processes outlived their parent"
        print(f"workers gone {time.monotonic() - killed:.2f} s after the parent's SIGKILL")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in pids:  # never leave one behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
