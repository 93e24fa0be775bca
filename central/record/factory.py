"""The one place that knows which implementations of the stores the hub runs: from the settings, the
stores of ``central.record.stores``. Today that is SQLite (hub.db and the day files under the data
folder), as it always was; the PostgreSQL record (``central.record.postgresql``) implements the read
store but is not wired into the hub yet, since ingest commits a batch's reads in the same transaction
as the rest of the batch (see docs/architecture.md, "The store seam")."""

from __future__ import annotations

from central.record.sqlite.store import HubStore
from central.record.stores import HubStores
from central.settings import HubSettings


def open_store(settings: HubSettings) -> HubStores:
    """The hub's stores for these settings, not started yet (``start`` opens them)."""
    return HubStore(
        settings.data_path / "hub.db",
        utc_offset=settings.record.utc_offset,
        attached_max=settings.record.attached_max,
        busy_timeout_s=settings.store.busy_timeout_s,
    )
