"""The settings sections both the hub and an edge have, defined once: HTTP, MQTT and metrics.

Each side's ``settings.py`` takes these as they are (``[metrics]``) or extends them with its own keys and
defaults (``[http]``, ``[mqtt]``: a hub listens on 8080, an edge on 8081; only an edge batches events).
Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import msgspec

STRICT = {"forbid_unknown_fields": True, "kw_only": True}
"""Every settings section refuses a key it does not know, and takes keys by name only."""


class HttpSettings(msgspec.Struct, **STRICT):
    """``[http]``: where the side serves its pages and API."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4 * 1024 * 1024
    cert_file: str | None = None
    """With key_file: serve over HTTPS (``cordon pki issue --hosts``)."""
    key_file: str | None = None


class MqttSettings(msgspec.Struct, **STRICT):
    """``[mqtt]``: the broker, how to log in, how to come back after a lost connection."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    ca_file: str | None = None
    """With an ``mqtts://`` url: the CA that signed the broker's certificate (default: the system's CAs)."""
    cert_file: str | None = None
    """With key_file: this side's client certificate, whose CN the broker takes as the user name."""
    key_file: str | None = None


class MetricsSettings(msgspec.Struct, **STRICT):
    """``[metrics]``: who may scrape ``/metrics``."""

    token: str = ""
    """Bearer token a Prometheus scraper presents at /metrics; empty: signed-in people only."""
