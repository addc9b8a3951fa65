"""A real IMAP server for tests: Debian's Dovecot run from a throw-away configuration on 127.0.0.1.

Not a fake: Dovecot is what many mail hosts run, so IDLE, UIDVALIDITY, flags and MIME come from the real
thing. Started with ``dovecot -F -c <tmp>/dovecot.conf`` (foreground, its own base_dir and state_dir, plain
text login on loopback only, users in a passwd-file) and stopped by its pid. Mail is stored in Maildirs
under the temporary directory, owned by an unprivileged uid (Dovecot refuses to run mail processes as root).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
{users}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
protocol imap {{
  imap_idle_notify_interval = 1 secs
  {capability}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (str(Path("/usr/sbin/dovecot")) if Path("/usr/sbin/dovecot").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """``with Dovecot({"bot@example.gov.cn": "secret"}) as imap: imap.port`` — a running IMAP server."""

    def __init__(self, users: dict[str, str], *, port: int | None = None, idle: bool = True) -> None:
        self.users = dict(users)
        self.idle = idle  # False: CAPABILITY without IDLE (a server that must be polled)
        self.host = "127.0.0.1"
        self.port = port or _free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dir(self) -> Path:
        assert self._tmp is not None, "not started"
        return Path(self._tmp.name)

    def start(self) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("dovecot is not installed (apt-get install -y dovecot-imapd)")
        self._tmp = tempfile.TemporaryDirectory(prefix="coordbot-dovecot-")
        d = self.dir
        d.chmod(0o755)
        (d / "mail").mkdir()
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("nobody")  # any unprivileged uid owns the Maildirs
            users = ""
            os.chown(d / "mail", mail_user.pw_uid, mail_user.pw_gid)
        else:  # unprivileged Dovecot: every service runs as the current user
            mail_user = pwd.getpwuid(os.geteuid())
            users = f"default_internal_user = {mail_user.pw_name}\ndefault_login_user = {mail_user.pw_name}"
        (d / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()), encoding="utf-8")
        (d / "dovecot.conf").write_text(
            CONFIG.format(
                d=d,
                uid=mail_user.pw_uid,
                gid=mail_user.pw_gid,
                port=self.port,
                users=users,
                capability="" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS",
            ),
            encoding="utf-8",
        )
        self._proc = subprocess.Popen(
            [binary, "-F", "-c", str(d / "dovecot.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"dovecot exited: {err}{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                    if s.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Dovecot:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


class MailboxClient:
    """A second IMAP login to a Dovecot mailbox, as the mail system (delivering) or a person (reading)."""

    def __init__(self, server: Dovecot, user: str) -> None:
        self.server = server
        self.user = user

    async def _login(self) -> Any:
        client = aioimaplib.IMAP4(host=self.server.host, port=self.server.port, timeout=10)
        await client.wait_hello_from_server()
        response = await client.login(self.user, self.server.users[self.user])
        if response.result != "OK":
            raise RuntimeError(f"login to {self.user} refused")
        return client

    async def deliver(self, raw: bytes, *, folder: str = "INBOX") -> None:
        """Put a mail into the mailbox as the MTA's local delivery would (IMAP APPEND)."""
        client = await self._login()
        try:
            response = await client.append(raw, mailbox=folder)
            if response.result != "OK":
                raise RuntimeError(f"APPEND refused: {response.lines!r}")
        finally:
            await client.logout()

    async def flags(self, *, folder: str = "INBOX") -> dict[int, str]:
        """{uid: its FLAGS list} of every mail in ``folder``."""
        client = await self._login()
        try:
            await client.select(folder)
            response = await client.fetch("1:*", "(UID FLAGS)")
            found: dict[int, str] = {}
            for line in response.lines:
                m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", bytes(line))
                if m:
                    uid = int(m.group(1) or m.group(4))
                    found[uid] = (m.group(2) if m.group(1) else m.group(3)).decode()
            return found
        finally:
            await client.logout()
