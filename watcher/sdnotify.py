"""The systemd notify protocol (sd_notify), spoken directly over `NOTIFY_SOCKET`.

systemd hands a `Type=notify` service a unix datagram socket in `NOTIFY_SOCKET` (a path, or
`@name` for an abstract socket) and, with `WatchdogSec=`, the watchdog interval in
`WATCHDOG_USEC` (and the pid it applies to in `WATCHDOG_PID`). Each message is one datagram
of `KEY=VALUE` lines.

Use from the daemon:

    notifier = Notifier.from_env()
    ...load the pipeline, start the detector...
    notifier.ready("watching /workspace/output")
    while running:
        notifier.watchdog()            # every iteration; rate-limited to interval/2
        ...one iteration...
        sleep(notifier.cap_sleep(rescan_interval_s))
    notifier.stopping()

There is deliberately no background thread: the pings come from the main loop, so a loop
that hangs stops pinging and systemd restarts the service. Without `NOTIFY_SOCKET` every
method is a no-op, and a failed send never raises (the first failure is logged).

Only the standard library is used at import time; the project logger and secret redaction
are imported lazily where they are needed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from watcher.redact import redact

# How long one send may block (a full receive queue at systemd's end) before it is dropped:
# the main loop must never hang on the notify socket itself.
SEND_TIMEOUT_S = 2.0


def _parse_socket_address(raw: str) -> bytes | None:
    """NOTIFY_SOCKET -> a sockaddr_un path (abstract names start with a NUL byte)."""
    if raw.startswith("/"):
        return os.fsencode(raw)
    if raw.startswith("@") and len(raw) > 1:
        return b"\0" + os.fsencode(raw[1:])
    return None  # e.g. systemd 253's "vsock:CID:PORT", which this module does not speak


def _parse_watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """WATCHDOG_USEC -> seconds, or None when the watchdog is off or meant for another pid."""
    raw_usec = environ.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = environ.get("WATCHDOG_PID", "").strip()
    if raw_pid:
        # systemd sets WATCHDOG_PID so a child that inherits the environment does not ping
        # on the main process's behalf.
        try:
            if int(raw_pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000


class Notifier:
    """Sends sd_notify messages; every method is a no-op when no socket is configured."""

    def __init__(
        self,
        socket_address: str | None = None,
        watchdog_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket_address = socket_address or None
        self._address = _parse_socket_address(socket_address) if socket_address else None
        # No socket, no watchdog: the caller need not cap its sleep for pings nobody hears.
        self.watchdog_interval_s = watchdog_interval_s if self._address is not None else None
        self.send_errors = 0
        self._clock = clock
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        if self.socket_address and self._address is None:
            self._warn_once(f"unsupported NOTIFY_SOCKET address {self.socket_address!r}")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        unset_environment: bool = False,
    ) -> Notifier:
        """Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (os.environ by default).

        With unset_environment the three variables are removed from os.environ, so child
        processes (git, a trainer) do not inherit them.
        """
        env = os.environ if environ is None else environ
        notifier = cls(env.get("NOTIFY_SOCKET", "").strip() or None, _parse_watchdog_interval(env))
        if unset_environment:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        """True when messages go somewhere."""
        return self._address is not None

    @property
    def max_sleep_s(self) -> float | None:
        """The longest a loop iteration may sleep and still ping in time (None: no watchdog).

        A ping is sent once interval/2 has passed since the last one, at the next iteration,
        so the gap between pings is up to interval/2 + one iteration. Capping the sleep at
        interval/4 keeps that gap at 3/4 of the interval plus the iteration's own work.
        """
        if self.watchdog_interval_s is None:
            return None
        return self.watchdog_interval_s / 4

    def cap_sleep(self, wanted_s: float) -> float:
        """wanted_s, shortened to max_sleep_s when the watchdog is on."""
        cap = self.max_sleep_s
        return wanted_s if cap is None else min(wanted_s, cap)

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up is complete (pipeline loaded, folder watched)."""
        return self._send("READY=1" + self._status_line(status))

    def status(self, text: str) -> bool:
        """STATUS=...: one line shown by `systemctl status`."""
        return self._send(self._status_line(text).lstrip("\n"))

    def watchdog(self) -> bool:
        """WATCHDOG=1, at most once per interval/2; call it from every main-loop iteration.

        Returns True when a ping was sent.
        """
        if self.watchdog_interval_s is None or not self.enabled:
            return False
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self.watchdog_interval_s / 2:
            return False
        self._last_ping = now
        return self._send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """EXTEND_TIMEOUT_USEC: ask for more start-up (or stop) time, e.g. during a slow load."""
        return self._send(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: shutdown has begun."""
        return self._send("STOPPING=1" + self._status_line(status))

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 with MONOTONIC_USEC (required by Type=notify-reload); send ready() after."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}" + self._status_line(status))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    @staticmethod
    def _status_line(text: str | None) -> str:
        if text is None:
            return ""
        # One datagram line per key: a newline inside the text would start a bogus key.
        flat = " ".join(redact(text).split())
        return f"\nSTATUS={flat}"

    def _send(self, message: str) -> bool:
        if self._address is None:
            return False
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.settimeout(SEND_TIMEOUT_S)
                self._sock.sendto(message.encode("utf-8"), self._address)
                return True
            except OSError as exc:
                self.send_errors += 1
                if self.send_errors == 1:
                    self._warn_once(f"sd_notify to {self.socket_address} failed: {exc}")
                return False

    def _warn_once(self, message: str) -> None:
        # Called at most once per Notifier (first failure): later failures are only counted.
        # structlog is imported here, not above: this module stays standard-library only.
        from watcher.logs import get_logger

        get_logger().warning("sdnotify_unavailable", error=message)
