"""watcher.sdnotify against a real unix datagram socket owned by the test.

The child-process tests run a real Python process that uses Notifier the way the daemon
does (ready, then watchdog() from each loop iteration) and block its loop in a system call:
the pings stop while it is blocked and resume once it is released.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher import logs
from watcher.sdnotify import Notifier

REPO_ROOT = Path(__file__).resolve().parent.parent


class NotifySocket:
    """The receiving end systemd would own: a bound SOCK_DGRAM unix socket."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        bind_to = "\0" + address[1:] if address.startswith("@") else address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)

    def receive(self, timeout: float) -> str | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except TimeoutError:
            return None

    def collect(self, seconds: float) -> list[str]:
        """Every message that arrives within `seconds`."""
        end = time.monotonic() + seconds
        out: list[str] = []
        while (left := end - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None:
                out.append(message)
        return out

    def wait_for(self, predicate: object, timeout: float = 30.0) -> tuple[str, list[str]]:
        """Reads until a message satisfies predicate; returns it and the messages before it."""
        end = time.monotonic() + timeout
        before: list[str] = []
        while (left := end - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None:
                break
            if predicate(message):  # type: ignore[operator]
                return message, before
            before.append(message)
        raise AssertionError(f"no matching message within {timeout}s; got {before!r}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(str(tmp_path / "notify.sock"))
    yield s
    s.close()


def test_messages_arrive_as_systemd_reads_them(notify_socket: NotifySocket) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": notify_socket.env_value})
    assert n.enabled and n.watchdog_interval_s is None
    assert n.ready("pipeline loaded")
    assert notify_socket.receive(5) == "READY=1\nSTATUS=pipeline loaded"
    assert n.status("epoch 4\nevaluated:  stop")  # a newline would start a bogus key
    assert notify_socket.receive(5) == "STATUS=epoch 4 evaluated: stop"
    assert n.stopping()
    assert notify_socket.receive(5) == "STOPPING=1"
    assert n.extend_timeout(90)
    assert notify_socket.receive(5) == "EXTEND_TIMEOUT_USEC=90000000"
    assert n.reloading()
    reload_lines = (notify_socket.receive(5) or "").split("\n")
    assert reload_lines[0] == "RELOADING=1"
    assert reload_lines[1].startswith("MONOTONIC_USEC=") and int(reload_lines[1].split("=")[1]) > 0
    assert not n.watchdog()  # no WATCHDOG_USEC: watchdog off
    assert notify_socket.receive(0.2) is None


def test_abstract_socket_address() -> None:
    receiver = NotifySocket(f"@epochwatch-test-{uuid.uuid4().hex}")
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": "2000000"})
        assert n.watchdog_interval_s == 2.0
        assert n.ready()
        assert receiver.receive(5) == "READY=1"
        assert n.watchdog()
        assert receiver.receive(5) == "WATCHDOG=1"
    finally:
        receiver.close()


def test_status_never_carries_a_secret(notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_KEY", "sb-secret-key-0123456789")
    n = Notifier.from_env({"NOTIFY_SOCKET": notify_socket.env_value})
    n.status("upload failed with key sb-secret-key-0123456789 via https://user:pw@example.org/x")
    message = notify_socket.receive(5) or ""
    assert "sb-secret-key" not in message and "user:pw" not in message
    assert message.startswith("STATUS=upload failed with key ***")


@pytest.mark.parametrize(
    ("environ", "enabled", "interval"),
    [
        ({}, False, None),
        ({"NOTIFY_SOCKET": ""}, False, None),
        ({"WATCHDOG_USEC": "1000000"}, False, None),  # no socket: nothing to ping
        ({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "1500000"}, True, 1.5),
        ({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "0"}, True, None),
        ({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "soon"}, True, None),
        ({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}, True, 1.0),
        # The watchdog belongs to another process (we inherited its environment).
        ({"NOTIFY_SOCKET": "/run/x.sock", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, True, None),
        ({"NOTIFY_SOCKET": "vsock:2:1234", "WATCHDOG_USEC": "1000000"}, False, None),
    ],
)
def test_from_env(environ: dict[str, str], enabled: bool, interval: float | None) -> None:
    n = Notifier.from_env(environ)
    assert n.enabled is enabled
    assert n.watchdog_interval_s == interval
    assert n.cap_sleep(10.0) == (10.0 if interval is None else interval / 4)


def test_unset_environment_hides_the_socket_from_children(monkeypatch: pytest.MonkeyPatch, notify_socket: NotifySocket) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    n = Notifier.from_env(unset_environment=True)
    assert n.enabled and n.watchdog_interval_s == 1.0
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    assert n.ready()
    assert notify_socket.receive(5) == "READY=1"


def test_unset_socket_makes_every_call_a_no_op() -> None:
    n = Notifier.from_env({})
    assert not n.ready("x") and not n.status("x") and not n.watchdog() and not n.stopping()
    assert n.max_sleep_s is None and n.send_errors == 0


def test_watchdog_rate_limited_to_half_the_interval(notify_socket: NotifySocket) -> None:
    now = [100.0]
    n = Notifier(notify_socket.env_value, watchdog_interval_s=4.0, clock=lambda: now[0])
    sent = []
    for t in (100.0, 100.5, 101.9, 102.0, 102.1, 103.99, 104.0, 110.0):
        now[0] = t
        sent.append(n.watchdog())
    assert sent == [True, False, False, True, False, False, True, True]
    assert notify_socket.collect(0.3) == ["WATCHDOG=1"] * 4


def test_send_errors_never_raise_and_are_logged_once(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure(json_lines=True, stream=stream)
    n = Notifier(str(tmp_path / "nobody-listens.sock"), watchdog_interval_s=1.0, clock=iter(range(0, 100, 10)).__next__)
    try:
        results = [n.ready(), n.status("x"), n.watchdog(), n.watchdog(), n.stopping()]
    finally:
        logs.configure()  # back to the default stream for the rest of the session
    assert results == [False] * 5
    assert n.send_errors == 5
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["sdnotify_unavailable"]
    assert "nobody-listens.sock" in lines[0]["error"]


# The child: the daemon's loop shape. It blocks in sigwait() (a real blocking system call, no
# Python code running) when the test creates `block`, and leaves once `stop` exists.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from watcher.sdnotify import Notifier

    folder = Path(sys.argv[1])
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    n = Notifier.from_env()
    n.ready("child ready")
    iterations = pings = 0
    while not (folder / "stop").exists():
        iterations += 1
        pings += n.watchdog()
        if (folder / "block").exists():
            (folder / "block").unlink()
            n.status(f"blocked iterations={iterations} pings={pings}")
            signal.sigwait({signal.SIGUSR1})
            n.status("released")
        time.sleep(n.cap_sleep(0.02))
    n.stopping()
    """
)


def _spawn_child(tmp_path: Path, notify: NotifySocket, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "NOTIFY_SOCKET": notify.env_value, "PYTHONPATH": str(REPO_ROOT), **extra_env}
    return subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, cwd=tmp_path)


def _stop_child(child: subprocess.Popen[bytes], tmp_path: Path) -> int:
    (tmp_path / "stop").touch()
    try:
        return child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_child_pings_from_its_loop_and_stops_when_the_loop_blocks(tmp_path: Path, notify_socket: NotifySocket) -> None:
    interval = 0.2  # WATCHDOG_USEC=200000: a ping at most every 0.1 s
    child = _spawn_child(tmp_path, notify_socket, {"WATCHDOG_USEC": str(int(interval * 1e6))})
    try:
        ready, before = notify_socket.wait_for(lambda m: m.startswith("READY=1"))
        assert ready == "READY=1\nSTATUS=child ready" and before == []
        first_pings = notify_socket.collect(1.0)
        assert len(first_pings) >= 3 and set(first_pings) == {"WATCHDOG=1"}

        (tmp_path / "block").touch()
        blocked, pings_before_block = notify_socket.wait_for(lambda m: m.startswith("STATUS=blocked"))
        fields = dict(kv.split("=") for kv in blocked.removeprefix("STATUS=blocked ").split())
        # Every ping the child sent arrived, and the rate limit held: its loop ran more often.
        assert set(pings_before_block) <= {"WATCHDOG=1"}
        assert len(first_pings) + len(pings_before_block) == int(fields["pings"])
        assert int(fields["iterations"]) > int(fields["pings"])

        # Loop blocked: five watchdog intervals pass without a single ping.
        assert notify_socket.collect(5 * interval) == []
        assert child.poll() is None  # alive, just stuck

        child.send_signal(signal.SIGUSR1)
        released, _ = notify_socket.wait_for(lambda m: m == "STATUS=released")
        _, more = notify_socket.wait_for(lambda m: m == "WATCHDOG=1")
        assert more == []  # the next message after release is a ping again
    finally:
        rc = _stop_child(child, tmp_path)
    assert rc == 0
    assert "STOPPING=1" in notify_socket.collect(2.0)


def test_child_does_not_ping_for_another_process(tmp_path: Path, notify_socket: NotifySocket) -> None:
    # WATCHDOG_PID names this test process: the child inherited a watchdog that is not its own.
    child = _spawn_child(tmp_path, notify_socket, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    try:
        ready, _ = notify_socket.wait_for(lambda m: m.startswith("READY=1"))
        assert notify_socket.collect(1.0) == []
    finally:
        rc = _stop_child(child, tmp_path)
    assert rc == 0
    assert notify_socket.collect(2.0) == ["STOPPING=1"]
