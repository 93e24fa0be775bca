"""Where the command line finds the hub's settings from ``--config``/``--data`` (``cordon user``, ``cordon
audit``)."""

from __future__ import annotations

import msgspec

from central.settings import HubSettings, load_settings


def hub_settings(config: str | None, data: str | None) -> HubSettings:
    """The hub's settings from ``--config`` (hub.toml, with its environment overrides), its ``data_dir``
    replaced by ``--data`` when given; without ``--config``, the defaults with ``--data`` (or ./data/hub)."""
    if config:
        settings = load_settings(config)
        if data:
            settings = msgspec.structs.replace(settings, data_dir=data)
        return settings
    return HubSettings(data_dir=data or "./data/hub")
