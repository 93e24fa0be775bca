"""What a hub keeps in memory on SQLite and in the database on PostgreSQL, so that every hub on the
database sees the same: failed logins (``LoginLimitStore``), import jobs (``ImportJobStore``) and cached
evidence pictures (``EvidenceStore``). Each call is one short statement on a pooled autocommit connection,
from any thread."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, get_args

import msgspec

from central.record.evidencefiles import REQUEST_KEEP_S
from central.record.memory import MAX_IMPORT_JOBS
from central.record.postgresql.connections import Pool
from central.record.postgresql.duties import hubs_alive
from protocols import topics
from protocols.messages import EvidenceKind

#: The pictures an edge sends of a read (the wire's ``EvidenceKind``).
KINDS = get_args(EvidenceKind)


#: Failures past the window dropped with each new failure (more than one comes in, so the table shrinks).
FORGET_PER_FAILURE = 100


class PgLoginLimitStore:
    """Failed logins per account and per address in a sliding window, as ``runtime.web.LoginLimiter``
    counts them in memory; here every hub on the database counts the same failures. ``clock`` is wall
    time (several hosts), not a process's monotonic clock."""

    def __init__(
        self,
        pool: Pool,
        per_account: int = 5,
        per_address: int = 20,
        window_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self._clock = clock

    def retry_after(self, account: str, address: str) -> float | None:
        """Seconds until another attempt is allowed, or None when one is allowed now."""
        now = self._clock()
        with self._pool.connection() as conn:
            for key, limit in ((f"u:{account}", self.per_account), (f"a:{address}", self.per_address)):
                # The limit-th most recent failure inside the window decides when one more is allowed.
                row = conn.execute(
                    "SELECT at FROM login_failures WHERE key = %s AND at > %s ORDER BY at DESC OFFSET %s LIMIT 1",
                    (_key(key), now - self.window_s, limit - 1),
                ).fetchone()
                if row is not None:
                    return max(1.0, self.window_s - (now - row[0]))
        return None

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        keys = [_key(f"u:{account}"), _key(f"a:{address}")]
        with self._pool.connection() as conn, conn.transaction():
            # What left the window goes, a little at a time: a flood of made-up names must not grow the table.
            conn.execute(
                "DELETE FROM login_failures WHERE ctid = ANY(ARRAY(SELECT ctid FROM login_failures "
                "WHERE at <= %s LIMIT %s))",
                (now - self.window_s, FORGET_PER_FAILURE),
            )
            conn.execute("INSERT INTO login_failures (key, at) SELECT unnest(%s::text[]), %s", (keys, now))

    def succeeded(self, account: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM login_failures WHERE key = %s", (_key(f"u:{account}"),))


def _key(key: str) -> str:
    # A name typed at the login form may hold a NUL, which text cannot: it counts under U+FFFD instead.
    return key.replace("\0", "\ufffd")


class StoredJob:
    """An import job another hub runs, as it last saved its status."""

    __slots__ = ("job_id", "_status")

    def __init__(self, job_id: str, status: dict[str, Any]) -> None:
        self.job_id = job_id
        self._status = status

    def status(self) -> dict[str, Any]:
        return dict(self._status)

    @property
    def finished(self) -> bool:
        return self._status.get("state") not in ("running", "applying")


class PgImportJobStore:
    """Import jobs by id: this hub's own jobs live in its memory (their tasks run here), as
    ``MemoryImportJobs`` keeps them, and each job's status is saved in the database when it is added and
    whenever this hub is asked for it, so any hub on the database answers for a job another hub runs (with
    its last saved status, a :class:`StoredJob`)."""

    def __init__(self, pool: Pool, max_jobs: int = MAX_IMPORT_JOBS, hub: str = "") -> None:
        self._pool = pool
        self.max_jobs = max_jobs
        #: the hub whose jobs these are (a job whose hub is gone, its life lock free, failed)
        self.hub = hub
        self._jobs: dict[str, Any] = {}

    def _save(self, job_id: str, job: Any) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO import_jobs (job_id, status, updated_at, hub) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
                (job_id, msgspec.json.encode(job.status()), time.time(), self.hub or None),
            )

    def save(self, job_id: str, job: Any, /) -> None:
        if job_id in self._jobs:
            self._save(job_id, job)

    def get(self, job_id: str, /) -> Any:
        job = self._jobs.get(job_id)
        if job is not None:
            self._save(job_id, job)
            return job
        with self._pool.connection() as conn:
            row = conn.execute("SELECT status, hub FROM import_jobs WHERE job_id = %s", (job_id,)).fetchone()
            if row is None:
                return None
            stored = StoredJob(job_id, msgspec.json.decode(bytes(row[0])))
            if not stored.finished and row[1] is not None and not hubs_alive(conn, [row[1]]):
                # Its hub is gone, and its task with it: it will never finish.
                stored = StoredJob(
                    job_id,
                    {
                        **stored.status(),
                        "state": "failed",
                        "error": f"the hub running the import ({row[1]}) stopped before it finished; "
                        "nothing was changed unless the list shows it: import again",
                    },
                )
        return stored

    def add(self, job_id: str, job: Any, /) -> None:
        while len(self._jobs) >= self.max_jobs and self._forget_oldest_finished():
            pass
        self._jobs[job_id] = job
        self._save(job_id, job)

    def _forget_oldest_finished(self) -> bool:
        for job_id, job in self._jobs.items():
            if job.finished:
                del self._jobs[job_id]
                with self._pool.connection() as conn:
                    conn.execute("DELETE FROM import_jobs WHERE job_id = %s", (job_id,))
                return True
        return False

    def jobs(self) -> list[Any]:
        """This hub's own jobs, oldest first."""
        return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)


class PgEvidenceStore:
    """Pictures fetched from the edges, by (checkpoint, epoch, seq, kind), at most ``max_bytes`` of them
    (the oldest kept go first), as ``central.alerts.evidence.EvidenceCache`` keeps them on disk."""

    def __init__(self, pool: Pool, max_bytes: int) -> None:
        self._pool = pool
        self.max_bytes = max_bytes

    @staticmethod
    def _check(key: tuple[str, int, int, str]) -> tuple[str, int, int, str]:
        checkpoint, epoch, seq, kind = key
        if not topics.valid_checkpoint_id(checkpoint) or kind not in KINDS:
            raise ValueError("bad evidence key")
        return checkpoint, int(epoch), int(seq), kind

    def cached(self, key: tuple[str, int, int, str]) -> bytes | None:
        key = self._check(key)
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT data FROM evidence WHERE checkpoint = %s AND epoch = %s AND seq = %s AND kind = %s",
                key,
            ).fetchone()
        return None if row is None else bytes(row[0])

    def ask(self, request_id: str, checkpoint: str, epoch: int, seq: int, deferred: bool = False) -> None:
        now = time.time()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM evidence_requests WHERE asked_at < %s", (now - REQUEST_KEEP_S,))
            conn.execute(
                "INSERT INTO evidence_requests (request_id, checkpoint, epoch, seq, asked_at, deferred) "
                "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (request_id) DO NOTHING",
                (request_id, checkpoint, epoch, seq, now, deferred),
            )

    def request_of(self, request_id: str) -> tuple[str, int, int] | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT checkpoint, epoch, seq FROM evidence_requests WHERE request_id = %s", (request_id,)
            ).fetchone()
        return None if row is None else (row[0], int(row[1]), int(row[2]))

    def defer(self, checkpoint: str, epoch: int, seq: int) -> None:
        with self._pool.connection() as conn, conn.transaction():
            updated = conn.execute(
                "UPDATE evidence_requests SET deferred = true WHERE checkpoint = %s AND epoch = %s AND seq = %s",
                (checkpoint, epoch, seq),
            ).rowcount
            if not updated:
                conn.execute(
                    "INSERT INTO evidence_requests (request_id, checkpoint, epoch, seq, asked_at, deferred) "
                    "VALUES (%s,%s,%s,%s,%s,true)",
                    ("D" + secrets.token_hex(12), checkpoint, epoch, seq, time.time()),
                )

    def take_deferred(self, checkpoints: Iterable[str]) -> list[tuple[str, int, int]]:
        """One statement: two hubs taking at once take each deferred read once."""
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE evidence_requests SET deferred = false WHERE deferred AND checkpoint = ANY(%s) "
                "RETURNING checkpoint, epoch, seq",
                (sorted(set(checkpoints)),),
            ).fetchall()
        return sorted({(cp, int(epoch), int(seq)) for cp, epoch, seq in rows})

    def answered(self, checkpoint: str, epoch: int, seq: int) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE evidence_requests SET deferred = false WHERE checkpoint = %s AND epoch = %s AND seq = %s "
                "AND deferred",
                (checkpoint, epoch, seq),
            )

    def keep(self, key: tuple[str, int, int, str], data: bytes) -> None:
        key = self._check(key)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO evidence (checkpoint, epoch, seq, kind, data, kept_at) VALUES (%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (checkpoint, epoch, seq, kind) DO UPDATE SET data = excluded.data, "
                "kept_at = excluded.kept_at",
                (*key, data, time.time()),
            )
            # Trim to max_bytes, oldest first: what is kept newest counts first.
            conn.execute(
                "DELETE FROM evidence e USING (SELECT checkpoint, epoch, seq, kind, sum(length(data)) OVER "
                "(ORDER BY kept_at DESC, checkpoint, epoch, seq, kind) AS total FROM evidence) t "
                "WHERE t.total > %s AND (e.checkpoint, e.epoch, e.seq, e.kind) = (t.checkpoint, t.epoch, t.seq, t.kind)",
                (self.max_bytes,),
            )
