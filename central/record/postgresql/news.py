"""A wake-up from hub to hub: "I committed alerts, or news of alerts; read the store now".

Hubs sharing one database learn of each other's alerts by reading the store by position
(``central/alerts/relay.py``), every ``relay.POLL_S``. That poll alone put a quarter of a second into
every alert another hub raised, the half of them a console behind the front door gets that way. This
channel wakes the other hubs' relays at once, with PostgreSQL's ``NOTIFY``: sent after the commit, in a
transaction of its own on a connection of its own (a ``NOTIFY`` inside the ingest transaction would
take the notification queue's lock at every commit, serializing them: docs/architecture.md, "Several
hubs on one store"), and heard on a connection that only ``LISTEN``-s.

It carries nothing but the wake-up: the relay still reads what is new by position, and still polls, so
a notification lost (a hub that dies between its commit and its ``NOTIFY``, a listener reconnecting) costs
only the poll's delay. Announcements are coalesced: those made while one ``NOTIFY`` is being sent, and
for ``ANNOUNCE_GAP_S`` after it, make one more; and a hub does not wake itself with its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "cordon_news"
#: After each ``NOTIFY``, announcements wait this long and go as one: at saturation a hub dispatches
#: alerts hundreds of times a second, and each notification sets every other hub's relay reading.
ANNOUNCE_GAP_S = 0.02
#: How long the listener waits for a notification before it looks whether it should stop.
LISTEN_TICK_S = 1.0
#: Waits before connecting again after the database went away (doubling up to the last).
RETRY_S = (0.5, 1.0, 2.0, 5.0)


class NewsChannel:
    """``announce()`` from any thread sends a wake-up to every hub listening on the database (once
    ``start``-ed); ``on_news`` (given to ``listen``) is called from the listener's thread for each one
    another hub sent (this hub's own are not news to it), and once after each (re)connect (what was said
    while it was away)."""

    def __init__(self, dsn: str, hub: str = "") -> None:
        self.dsn = dsn
        self.hub = hub
        self.announced = 0
        """``NOTIFY`` statements sent (announcements coalesced into them)."""
        self.heard = 0
        self._own_pid: int | None = None
        """The backend that sends this hub's notifications: what it says, this hub knows already."""
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._on_news: Callable[[], None] | None = None

    def start(self) -> None:
        """Begin sending what is announced."""
        self._stop.clear()
        self._spawn(self._announcer, "pg-news-announce")

    def listen(self, on_news: Callable[[], None]) -> None:
        """Begin listening: ``on_news`` from the listener's thread."""
        self._on_news = on_news
        self._spawn(self._listen, "pg-news-listen")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pending.set()
        for t in self._threads:
            t.join(LISTEN_TICK_S * 3)
        self._threads = []

    def announce(self) -> None:
        """Wake the hubs listening (non-blocking; from any thread)."""
        self._pending.set()

    def _connect(self) -> psycopg.Connection:
        # Keepalives: a listener whose server vanished without a word must notice and connect again.
        return psycopg.connect(
            self.dsn,
            autocommit=True,
            application_name=f"cordon-hub {self.hub} news"[:63],
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )

    def _announcer(self) -> None:
        conn: psycopg.Connection | None = None
        failures = 0
        while True:
            self._pending.wait()
            if self._stop.is_set():
                break
            self._pending.clear()  # announcements from here on make one more NOTIFY
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                    self._own_pid = conn.info.backend_pid
                conn.execute(f"NOTIFY {CHANNEL}")
                self.announced += 1
                failures = 0
                self._stop.wait(ANNOUNCE_GAP_S)
            except psycopg.Error as exc:
                # Lost: the other hubs' relays poll anyway. The next announcement tries a new connection.
                if failures == 0:
                    log.warning("could not announce news to the other hubs: %s", exc)
                failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S)) - 1])
        if conn is not None:
            conn.close()

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if failures:
                        log.info("listening to the other hubs' news again")
                    failures = 0
                    self._heard()  # what was announced while this hub was not listening
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=LISTEN_TICK_S):
                            if notify.pid != self._own_pid:  # another hub's news, not this hub's own
                                self._heard()
            except psycopg.Error as exc:
                if failures == 0:
                    log.warning(
                        "not listening to the other hubs' news (their alerts come by the poll): %s", exc
                    )
                failures += 1
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S)) - 1])

    def _heard(self) -> None:
        self.heard += 1
        if self._on_news is not None:
            self._on_news()
