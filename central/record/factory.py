"""The one place that knows which implementations of the stores the hub runs: from the settings, the
stores of ``central.record.stores``. Today that is SQLite (hub.db and the day files under the data
folder), as it always was; the PostgreSQL record (``central.record.postgresql``) implements the read
store but is not wired into the hub yet, since ingest commits a batch's reads in the same transaction
as the rest of the batch (see docs/architecture.md, "The store seam"). Beside them, the stores a hub keeps
of its own (in memory, or files under its data folder), which a hub cluster would move into a shared store."""

from __future__ import annotations

from central.record.evidencefiles import EvidenceFiles
from central.record.memory import MemoryImportJobs
from central.record.sqlite.store import HubStore
from central.record.stores import EvidenceStore, HubStores, ImportJobStore, LoginLimitStore
from central.settings import HubSettings
from runtime.web import LoginLimiter


def open_store(settings: HubSettings) -> HubStores:
    """The hub's stores for these settings, not started yet (``start`` opens them)."""
    return HubStore(
        settings.data_path / "hub.db",
        utc_offset=settings.record.utc_offset,
        attached_max=settings.record.attached_max,
        busy_timeout_s=settings.store.busy_timeout_s,
    )


def open_login_limits(settings: HubSettings) -> LoginLimitStore:
    """Failed logins, counted in this process's memory (the limiter the edge's login uses too)."""
    return LoginLimiter()


def open_import_jobs(settings: HubSettings) -> ImportJobStore:
    """Watchlist imports in progress, in this process's memory."""
    return MemoryImportJobs()


def open_evidence(settings: HubSettings) -> EvidenceStore:
    """Pictures fetched from the edges, as files under ``<data_dir>/evidence`` within ``evidence.max_bytes``."""
    return EvidenceFiles(settings.data_path / "evidence", settings.evidence.max_bytes)
