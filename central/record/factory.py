"""The one place that knows which implementations of the stores the hub runs: from the settings, the
stores of ``central.record.stores``. By default SQLite (hub.db and the day files under the data folder),
as it always was, and beside it the stores a hub keeps of its own (in memory, or files under its data
folder); with ``[store] backend = "postgresql"`` all of them on the database ``store.dsn`` names
(``central.record.postgresql``; docs/architecture.md, "The other stores on PostgreSQL")."""

from __future__ import annotations

from central.record.duties import SoleDuties
from central.record.evidencefiles import EvidenceFiles
from central.record.memory import MemoryImportJobs
from central.record.sqlite.store import HubStore
from central.record.stores import DutyStore, EvidenceStore, HubStores, ImportJobStore, LoginLimitStore
from central.settings import HubSettings
from runtime.web import LoginLimiter


def open_store(settings: HubSettings) -> HubStores:
    """The hub's stores for these settings, not started yet (``start`` opens them)."""
    if settings.store.backend == "postgresql":
        from central.record.postgresql.connections import with_password
        from central.record.postgresql.store import PgStores

        return PgStores(
            with_password(settings.store.dsn, settings.store.database_password()),
            utc_offset=settings.record.utc_offset,
            pool_size=settings.store.pool_size,
            hub=settings.hub_name,
        )
    return HubStore(
        settings.data_path / "hub.db",
        utc_offset=settings.record.utc_offset,
        attached_max=settings.record.attached_max,
        busy_timeout_s=settings.store.busy_timeout_s,
        hub=settings.hub_name,
    )


def _pool(settings: HubSettings):  # noqa: ANN202 - the PostgreSQL pool, named only here
    """A small pool of connections of its own for a side store on PostgreSQL (its tables are made by the
    hub's store at start-up; nothing connects before the first call)."""
    from central.record.postgresql.connections import Pool, with_password

    return Pool(with_password(settings.store.dsn, settings.store.database_password()), size=2)


def open_login_limits(settings: HubSettings) -> LoginLimitStore:
    """Failed logins: counted in this process's memory (the limiter the edge's login uses too), or on
    PostgreSQL in the database, where every hub counts the same failures."""
    if settings.store.backend == "postgresql":
        from central.record.postgresql.shared import PgLoginLimitStore

        return PgLoginLimitStore(_pool(settings))
    return LoginLimiter()


def open_import_jobs(settings: HubSettings) -> ImportJobStore:
    """Watchlist imports in progress: in this process's memory, and on PostgreSQL with their status in the
    database too, so another hub answers for them."""
    if settings.store.backend == "postgresql":
        from central.record.postgresql.shared import PgImportJobStore

        return PgImportJobStore(_pool(settings), hub=settings.hub_name)
    return MemoryImportJobs()


def open_evidence(settings: HubSettings) -> EvidenceStore:
    """Pictures fetched from the edges within ``evidence.max_bytes``: files under ``<data_dir>/evidence``,
    or on PostgreSQL rows every hub shares."""
    if settings.store.backend == "postgresql":
        from central.record.postgresql.shared import PgEvidenceStore

        return PgEvidenceStore(_pool(settings), settings.evidence.max_bytes)
    return EvidenceFiles(settings.data_path / "evidence", settings.evidence.max_bytes)


def open_duties(settings: HubSettings) -> DutyStore:
    """Which hub holds each duty (the work that runs once): this hub alone holds them all on SQLite (one
    hub per hub.db); on PostgreSQL the database decides, by a session lock per duty that every hub on it
    tries to take (``central.record.postgresql.duties``; nothing connects before the first claim)."""
    if settings.store.backend == "postgresql":
        from central.record.postgresql.connections import with_password
        from central.record.postgresql.duties import PgDuties

        return PgDuties(
            with_password(settings.store.dsn, settings.store.database_password()),
            settings.hub_name,
            lease_s=settings.cluster.duty_lease_s,
        )
    return SoleDuties(settings.hub_name)
