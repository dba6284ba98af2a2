"""A real Synapse homeserver for the Matrix tests: SQLite, loopback, a free port, its own
directory, rate limits raised (or made strict by an overlay), users registered with the
shared secret by Synapse's own `register_new_matrix_user`.

Synapse lives in its own virtualenv (`.venv-synapse`, made by `scripts/synapse-venv.sh`,
which `./scripts/test` runs), so its dependencies never meet the project's. Nothing is
installed or downloaded here: without that virtualenv the tests skip, saying why, except
in CI, where they fail.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SUBDESK_SYNAPSE_VENV", ROOT / ".venv-synapse"))
PYTHON = VENV / "bin" / "python"
SERVER_NAME = "synapse.test"
STARTUP_SECONDS = 60.0

# Every limit a test run could reach, raised far out of the way.
_OPEN = {"per_second": 10_000, "burst_count": 10_000}
RAISED_LIMITS: dict[str, object] = {
    "rc_message": _OPEN,
    "rc_registration": _OPEN,
    "rc_registration_token_validity": _OPEN,
    "rc_login": {"address": _OPEN, "account": _OPEN, "failed_attempts": _OPEN},
    "rc_joins": {"local": _OPEN, "remote": _OPEN},
    "rc_joins_per_room": _OPEN,
    "rc_invites": {"per_room": _OPEN, "per_user": _OPEN, "per_issuer": _OPEN},
    "rc_3pid_validation": _OPEN,
    "rc_admin_redaction": _OPEN,
    "rc_key_requests": _OPEN,
    "rc_room_creation": _OPEN,
    "rc_presence": {"per_user": _OPEN},
    "rc_media_create": _OPEN,
    "rc_delayed_event_mgmt": _OPEN,
    "rc_reports": _OPEN,
}
# The overlay of the flood test: a few messages, then one every two seconds.
STRICT_MESSAGES: dict[str, object] = {"rc_message": {"per_second": 0.5, "burst_count": 3}}

_REGISTER = """
import sys
from synapse._scripts.register_new_matrix_user import request_registration
url, secret = sys.argv[1], sys.argv[2]
for line in sys.stdin.read().split():
    name, password, admin = line.split(":", 2)
    request_registration(name, password, url, secret, admin=admin == "admin",
                         _print=lambda _: None)
"""


def synapse_missing() -> str | None:
    """Why Synapse cannot run here, or None when its virtualenv is in place."""
    if not PYTHON.exists():
        return (f"Synapse is not installed ({VENV.name} missing): ./scripts/test installs "
                "it with scripts/synapse-venv.sh")
    return None


def require_synapse() -> None:
    """Skip (fail in CI) when Synapse is not installed."""
    missing = synapse_missing()
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(missing)
    pytest.skip(missing)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Account:
    """A registered user: its id, local part and password."""

    user_id: str
    localpart: str
    password: str


@dataclass
class Synapse:
    """One running homeserver in `directory`, serving the client API on `url`."""

    directory: Path
    port: int
    secret: str
    overlay: dict[str, object] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> list[Path]:
        """The base configuration and, when there is one, the overlay on top of it."""
        d = self.directory
        (d / "media").mkdir(parents=True, exist_ok=True)
        log_config = {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                                  "filename": str(d / "homeserver.log")}},
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (d / "log.yaml").write_text(yaml.safe_dump(log_config))
        base: dict[str, object] = {
            "server_name": SERVER_NAME,
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http",
                           "tls": False, "x_forwarded": False,
                           "resources": [{"names": ["client"], "compress": False}]}],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.yaml"),
            "media_store_path": str(d / "media"),
            "max_upload_size": "50M",
            "registration_shared_secret": self.secret,
            "report_stats": False,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "signing_key_path": str(d / "signing.key"),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "enable_metrics": False,
            "bcrypt_rounds": 4,  # registration and login in milliseconds
            **RAISED_LIMITS,
        }
        files = [d / "homeserver.yaml"]
        files[0].write_text(yaml.safe_dump(base))
        if self.overlay:
            files.append(d / "overlay.yaml")
            files[1].write_text(yaml.safe_dump(self.overlay))
        return files

    def start(self) -> None:
        """Generate the configuration and signing key (first start only), start the
        server and wait until it answers."""
        began = time.monotonic()
        args = [str(PYTHON), "-m", "synapse.app.homeserver"]
        if not (self.directory / "homeserver.yaml").exists():
            for f in self.write_config():
                args += ["-c", str(f)]
            subprocess.run([*args, "--generate-missing-configs"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        else:
            for name in ("homeserver.yaml", "overlay.yaml"):
                if (self.directory / name).exists():
                    args += ["-c", str(self.directory / name)]
        out = (self.directory / "stdout.log").open("ab")
        self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=self.directory, start_new_session=True)
        self._wait_ready(began)
        self.started_in = time.monotonic() - began

    def _wait_ready(self, began: float) -> None:
        import urllib.request

        assert self.process is not None
        while time.monotonic() - began < STARTUP_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited at start; see {self.directory}/stdout.log")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Synapse did not answer within {STARTUP_SECONDS:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def pause(self) -> None:
        """The homeserver stops answering (its process is stopped, connections hang)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def names(self, *hints: str) -> list[str]:
        """Local parts unique on this server (and across workers and reruns)."""
        tag = uuid.uuid4().hex[:6]
        return [f"{hint}{next(self._names)}{tag}" for hint in hints]

    async def register(self, *hints: str, admin: bool = False) -> list[Account]:
        """Register one user per hint with `register_new_matrix_user`'s own code and the
        shared secret (one process for all of them)."""
        accounts = [Account(f"@{name}:{SERVER_NAME}", name, secrets.token_urlsafe(12))
                    for name in self.names(*hints)]
        role = "admin" if admin else "user"
        proc = await asyncio.create_subprocess_exec(
            str(PYTHON), "-c", _REGISTER, self.url, self.secret,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        lines = "\n".join(f"{a.localpart}:{a.password}:{role}" for a in accounts).encode()
        _, err = await asyncio.wait_for(proc.communicate(lines), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"registration failed: {err.decode(errors='replace')[-500:]}")
        return accounts


    async def unthrottle(self, *user_ids: str) -> None:
        """Lift the message rate limit of these users (Synapse's admin API, as an admin
        registered for it), so only the bot meets a strict overlay's limits."""
        import aiohttp

        (admin,) = await self.register("admin", admin=True)
        async with aiohttp.ClientSession() as session:
            login = {"type": "m.login.password", "password": admin.password,
                     "identifier": {"type": "m.id.user", "user": admin.localpart}}
            async with session.post(f"{self.url}/_matrix/client/v3/login", json=login) as r:
                token = (await r.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for user_id in user_ids:
                async with session.post(
                        f"{self.url}/_synapse/admin/v1/users/{user_id}/override_ratelimit",
                        json={"messages_per_second": 0, "burst_count": 0},
                        headers=headers) as r:
                    assert r.status == 200, await r.text()


def launch(directory: Path, overlay: dict[str, object] | None = None) -> Synapse:
    """A started Synapse in `directory` (with `overlay` on its configuration)."""
    server = Synapse(directory, free_port(), secrets.token_hex(16), overlay or {})
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    print(f"Synapse on {server.url} started in {server.started_in:.2f} s", file=sys.stderr)
    return server
