"""systemd's notify protocol (sd_notify), in the standard library only.

Under `Type=notify` systemd considers the gateway started when it says READY=1, and,
with `WatchdogSec=`, restarts it when the WATCHDOG=1 pings stop. The pings come from a
task on the gateway's own event loop, so a loop stuck in a blocking call or a busy
loop stops them: that is the hang the watchdog exists to catch.

The protocol is a datagram of newline-separated `KEY=value` lines sent to the
AF_UNIX socket named by NOTIFY_SOCKET. Outside systemd the variable is unset and every
method here does nothing. A failed send is never an error for the gateway: it keeps
serving and logs one warning, because a lost status line is not worth an outage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("aiogw.notify")


class Notifier:
    """Talks to systemd's notify socket; a no-op when there is none.

    Build it with `from_env()`. `ready`, `status`, `stopping` and the `watchdog` loop
    return quietly whatever happens to the socket.
    """

    __slots__ = ("_sock", "_warned", "address", "watchdog_interval")

    def __init__(self, address: str | None, watchdog_interval: float | None = None) -> None:
        # A leading NUL selects Linux's abstract namespace; systemd writes it as '@'.
        self.address = address
        # Seconds between pings, or None when systemd expects none (or cannot hear them).
        self.watchdog_interval = watchdog_interval if address else None
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, pid: int | None = None) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID the way libsystemd does.

        The watchdog interval is half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
        advises, so one late ping never trips it. WATCHDOG_PID, when set, names the
        process systemd watches; in any other process (a child that inherited the
        environment) the pings would be ignored, so there is no watchdog here.
        """
        env = os.environ if env is None else env
        address = _address(env.get("NOTIFY_SOCKET", ""))
        interval = None
        usec = env.get("WATCHDOG_USEC", "")
        owner = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0:
            if not owner or (owner.isdigit() and int(owner) == (os.getpid() if pid is None else pid)):
                interval = int(usec) / 2 / 1_000_000
        return cls(address, interval)

    @property
    def enabled(self) -> bool:
        """Whether systemd listens at all (NOTIFY_SOCKET was set and usable)."""
        return self.address is not None

    @property
    def socket_open(self) -> bool:
        """Whether a socket is held: opened by the first send, released by `close`."""
        return self._sock is not None

    def ready(self, status: str = "") -> bool:
        """Start-up is complete: the server listens and its background work runs."""
        return self.send("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """A one-line state for `systemctl status` (free text, no newlines)."""
        return self.send(*_status(text))

    def stopping(self, status: str = "") -> bool:
        """Shutdown has begun; systemd shows the unit as deactivating, not failed."""
        return self.send("STOPPING=1", *_status(status))

    def reloading(self, status: str = "") -> bool:
        """A configuration reload has begun; follow it with `ready()` when done."""
        # systemd 253+ wants the monotonic time with it, to tell this reload from others.
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                         *_status(status))

    def ping(self) -> bool:
        """One watchdog keep-alive."""
        return self.send("WATCHDOG=1")

    async def watchdog(self) -> None:
        """Ping every `watchdog_interval` seconds from this event loop, until cancelled.

        Returns at once when systemd expects no pings. Run it as a task owned by the
        server's lifetime and cancel it on shutdown.
        """
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.ping()
            await asyncio.sleep(interval)

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one datagram; True if systemd's socket took it.

        The socket is non-blocking: the event loop never waits on systemd, and a full
        socket buffer drops the message like any other failure.
        """
        if self.address is None or not assignments:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
                self._sock = sock
            self._sock.sendto("\n".join(assignments).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot notify systemd at NOTIFY_SOCKET=%s (%s); readiness, status and watchdog messages "
                    "are lost, and a unit with WatchdogSec= will restart the gateway. Check that the unit "
                    "has NotifyAccess=main and that nothing changed NOTIFY_SOCKET",
                    _shown(self.address),
                    exc,
                )
            return False
        return True

    def close(self) -> None:
        """Release the socket; later sends open a new one."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _address(raw: str) -> str | None:
    """NOTIFY_SOCKET as a socket address: an absolute path, or '@name' (abstract)."""
    if not raw:
        return None
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    # systemd only ever sets the two forms above; anything else was set by hand.
    log.warning("ignoring NOTIFY_SOCKET=%r: expected an absolute path or an '@' abstract name", raw)
    return None


def _status(text: str) -> tuple[str, ...]:
    # One datagram line per assignment: a newline in the text would start a new key.
    return (f"STATUS={' '.join(text.splitlines())}",) if text else ()


def _shown(address: str) -> str:
    return "@" + address[1:] if address.startswith("\0") else address
