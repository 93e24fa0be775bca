"""Which hub holds each duty, on PostgreSQL: session-level advisory locks (``DutyStore``).

Each duty is one advisory lock, ``(DUTY_LOCKS, key of its name)``, taken with ``pg_try_advisory_lock`` on
a connection the hub keeps for its duties alone (autocommit, ``application_name`` naming the hub, so
``pg_locks`` joined with ``pg_stat_activity`` shows who holds what). A session lock lives as long as the
session: nothing to renew, nothing to clean up after a dead hub, no clock but the server's timers.

- **A hub that dies** (crash, SIGKILL, its host rebooted by the kernel's hand) has its socket closed by
  its kernel; the server ends the session and frees its locks at once, and another hub takes them at its
  next beat (``cluster.duty_beat_s``).
- **A hub cut off** (its network gone, its host frozen) sends nothing more. The session is ended by the
  server's ``idle_session_timeout``, set on this connection to ``SESSION_TIMEOUT_FACTOR`` times the lease:
  with the defaults, 6 s after the hub's last beat. The hub itself stops its duties when no beat has
  answered for ``lease_s`` (4 s) since it was sent, before the server can free them, so the two never
  overlap in this case. Client-side TCP keepalives and ``tcp_user_timeout`` make a beat stuck on a dead
  line fail within about the lease, so the hub reconnects when the line is back.
- **A job fenced on a duty** (``fence``) first takes a transaction-level advisory lock ``(DUTY_FENCES,
  key)``, held to its commit, so fenced jobs of one duty never run side by side whichever hubs run them,
  then checks in ``pg_locks`` that this hub's duty session still holds the duty's lock.

Connection poolers in transaction mode (pgbouncer's default) break session locks: the duty connection
must reach PostgreSQL itself, or a pooler in session mode.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable

import psycopg
import psycopg.conninfo

from central.record.duties import DutyLost, life

#: The first key of every duty's session lock (two int4 keys: ``objsubid = 2`` in ``pg_locks``, apart
#: from the single bigint keys of the migrations, the audit trail, alerts and the feed).
DUTY_LOCKS = 0x436F7264  # "Cord"
#: The first key of the transaction locks that fence one duty's jobs.
DUTY_FENCES = 0x436F7265
#: The server ends a duty session this many leases after its last statement.
SESSION_TIMEOUT_FACTOR = 1.5

_HELD = (
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
    "AND objid = %s::oid AND objsubid = 2 AND granted AND pid = %s)"
)
# Held keys are checked in pg_locks, the others tried; CASE evaluates only the branch it takes, so a key
# already held is never locked twice (session locks count, and one unlock would not free it).
_BEAT = (
    "SELECT k, CASE WHEN k = ANY(%(held)s::int[]) THEN EXISTS (SELECT FROM pg_locks l "
    "WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.classid = %(ns)s::oid "
    "AND l.objid = k::oid AND l.objsubid = 2 AND l.granted) "
    "ELSE pg_try_advisory_lock(%(ns)s::int, k) END FROM unnest(%(keys)s::int[]) AS k"
)


# Any other session holding a duty lock: every hub's duty session holds at least its life lock.
_OTHERS = (
    "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
    "AND objsubid = 2 AND granted AND pid <> pg_backend_pid() "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


def duty_key(duty: str) -> int:
    """The second key of a duty's lock: 31 bits of the SHA-256 of its name (a collision would only
    make one hub hold both duties)."""
    return int.from_bytes(hashlib.sha256(duty.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def hubs_alive(conn: psycopg.Connection, hubs: Iterable[str]) -> set[str]:
    """Which of ``hubs`` are alive: their duty session holds their life lock (``central.record.duties.life``,
    which only that hub claims). A hub that died freed it when the server ended its session."""
    keys = {duty_key(life(hub)): hub for hub in hubs}
    if not keys:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT objid::int8 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
        "AND objsubid = 2 AND granted AND objid::int8 = ANY(%s::int8[])",
        (DUTY_LOCKS, sorted(keys)),
    ).fetchall()
    return {keys[k] for (k,) in rows}


class PgDuties:
    """``DutyStore`` on PostgreSQL (see the module doc); ``claim`` and ``release`` from one thread."""

    shared = True

    def __init__(self, dsn: str, hub: str, *, lease_s: float) -> None:
        self.dsn = dsn
        self.hub = hub
        self.lease_s = lease_s
        self._conn: psycopg.Connection | None = None
        #: the duty session's backend pid, read by ``fence`` from the writer's thread
        self._pid: int | None = None
        self._held: set[int] = set()
        self.others = True  # until a beat says otherwise
        self.company_at = -math.inf

    @property
    def session_timeout_s(self) -> float:
        """How long after a duty session's last statement the server ends it (``idle_session_timeout``)."""
        return self.lease_s * SESSION_TIMEOUT_FACTOR

    def _connect(self) -> psycopg.Connection:
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        options = " ".join(
            filter(
                None,
                [
                    str(params.get("options") or ""),
                    f"-c idle_session_timeout={math.ceil(self.session_timeout_s * 1000)}",
                    f"-c statement_timeout={math.ceil(self.lease_s * 1000)}",
                ],
            )
        )
        return psycopg.connect(
            self.dsn,
            autocommit=True,
            application_name=f"cordon-hub {self.hub} duties"[:63],
            options=options,
            connect_timeout=max(2, math.ceil(self.lease_s)),
            keepalives=1,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=max(1, math.ceil(self.lease_s)),
            tcp_user_timeout=math.ceil(self.lease_s * 1000),
        )

    def claim(self, duties: Iterable[str]) -> frozenset[str]:
        by_key: dict[int, list[str]] = {}
        for duty in duties:
            by_key.setdefault(duty_key(duty), []).append(duty)
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._drop()
                self._conn = self._connect()
                self._pid = self._conn.info.backend_pid
            rows = self._conn.execute(
                _BEAT, {"held": sorted(self._held), "ns": DUTY_LOCKS, "keys": sorted(by_key)}
            ).fetchall()
            (others,) = self._conn.execute(_OTHERS, (DUTY_LOCKS,)).fetchone()  # type: ignore[misc]
            self.others = bool(others)
            if others:
                self.company_at = time.monotonic()
        except psycopg.Error:
            self._drop()  # a session that may be gone holds nothing we can prove
            raise
        self._held = {k for k, ok in rows if ok}
        return frozenset(d for k in self._held for d in by_key.get(k, ()))

    def fence(self, tx: psycopg.Connection, duty: str) -> None:
        key = duty_key(duty)
        tx.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", (DUTY_FENCES, key))
        pid = self._pid
        (held,) = tx.execute(_HELD, (DUTY_LOCKS, key, pid if pid is not None else 0)).fetchone()  # type: ignore[misc]
        if pid is None or not held:
            raise DutyLost(f"hub {self.hub} no longer holds the duty {duty}")

    def release(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            try:
                conn.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                pass  # closing the session below frees them anyway
        self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._pid, self._held = self._conn, None, None, set()
        if conn is not None:
            conn.close()
