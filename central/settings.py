"""Typed settings of the hub (``hub.toml``); every key is documented in docs/configuration.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from runtime import config

from .upstream import UpstreamSettings

ENV_PREFIX = "CORDON_HUB_"

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}


class HttpSettings(msgspec.Struct, **_STRICT):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4 * 1024 * 1024
    max_import_bytes: int = 512 * 1024 * 1024


class MqttSettings(msgspec.Struct, **_STRICT):
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = "cordon-hub"
    username: str | None = "cordon-hub"
    password: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


class WatchlistSettings(msgspec.Struct, **_STRICT):
    csv: list[str] = msgspec.field(default_factory=list)
    """CSV files loaded at start-up (columns: plate, list, action, priority, reason, colour, vehicle_type)."""


class ConsoleSettings(msgspec.Struct, **_STRICT):
    token: str = ""
    """Access code for the command console; empty refuses every login."""
    recent_alerts: int = 100


class FeedSettings(msgspec.Struct, **_STRICT):
    token: str = ""
    """Bearer token edges present to fetch a feed snapshot; empty refuses every edge."""


class PermitSettings(msgspec.Struct, **_STRICT):
    rule_id: str
    list_id: str
    """The permit list (kind "permit") whose entries are the licensed vehicles."""
    colours: list[str] = msgspec.field(default_factory=list)
    vehicle_types: list[str] = msgspec.field(default_factory=list)
    permit_name: str = "permit"
    action: Literal["intercept", "covert", "notify"] = "intercept"
    priority: int = 50


class MetricsSettings(msgspec.Struct, **_STRICT):
    token: str = ""
    """Bearer token a Prometheus scraper presents at /metrics; empty: signed-in people only."""


class ClockSettings(msgspec.Struct, **_STRICT):
    max_skew_s: float = 30.0
    """An edge whose clock differs from the hub's by more than this is flagged."""


class WebhookSettings(msgspec.Struct, **_STRICT):
    name: str
    url: str
    """Where alerts are POSTed as JSON, with the alert id in ``Idempotency-Key``."""
    token: str = ""
    """Sent as ``Authorization: Bearer``; empty sends none."""
    lists: list[str] = msgspec.field(default_factory=list)
    """List ids this hook takes; empty: every list."""
    actions: list[Literal["intercept", "covert", "notify"]] = msgspec.field(
        default_factory=lambda: ["intercept", "notify"])
    """Covert alerts go out only to a hook that names ``covert`` here."""
    min_priority: int = 0
    timeout_s: float = 5.0
    retry_min_s: float = 1.0
    retry_max_s: float = 60.0
    give_up_after_s: float = 86400.0
    resume_window_s: float = 86400.0
    """After a restart, alerts this recent that the hook has no record of are sent again."""


class StoreSettings(msgspec.Struct, **_STRICT):
    busy_timeout_s: float = 30.0
    """How long a commit waits for a write lock another process holds on hub.db before it fails
    (nothing is acknowledged then, and the edges send again)."""


class HubSettings(msgspec.Struct, **_STRICT):
    data_dir: str = "./data/hub"
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    mqtt: MqttSettings = msgspec.field(default_factory=MqttSettings)
    watchlists: WatchlistSettings = msgspec.field(default_factory=WatchlistSettings)
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)
    clock: ClockSettings = msgspec.field(default_factory=ClockSettings)
    feed: FeedSettings = msgspec.field(default_factory=FeedSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    permits: list[PermitSettings] = msgspec.field(default_factory=list)
    upstream: list[UpstreamSettings] = msgspec.field(default_factory=list)
    webhooks: list[WebhookSettings] = msgspec.field(default_factory=list)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> HubSettings:
    """Read hub.toml, apply ``CORDON_HUB_SECTION__KEY`` overrides, validate."""
    return config.load(HubSettings, path, os.environ if environ is None else environ, ENV_PREFIX)
