"""Typed settings from a TOML file, overridden by environment variables and secret files.

Both ``cordon hub`` and ``cordon edge`` load their settings through :func:`load`. The settings
types are strict ``msgspec.Struct``s, so an unknown or mistyped key fails at start-up with a
message that names it. Overrides: ``{PREFIX}SECTION__KEY=value`` sets ``[section] key``;
``{PREFIX}SECTION__KEY_FILE=/path`` reads the value from a file (for secrets). Nothing else in
Cordon reads ``os.environ``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from protocols.errors import ConfigError

T = TypeVar("T")


class SettingsError(ConfigError, ValueError):
    """Settings that cannot be used; the message names the key and the file."""


def load(cls: type[T], path: str | Path | None, environ: Mapping[str, str], prefix: str) -> T:
    """Build a settings object from ``path`` (optional) and the overrides in ``environ``."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"settings file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    _apply_env(data, environ, prefix, cls)
    try:
        return msgspec.convert(data, type=cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{source}: {_friendly(str(exc))}") from None


def _is_field(cls: Any, path: list[str]) -> bool:
    """True when ``path`` names a field of the settings type (through nested sections)."""
    for key in path:
        if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
            return False
        fields = {f.name: f.type for f in msgspec.structs.fields(cls)}
        if key not in fields:
            return False
        cls = fields[key]
    return True


def _apply_env(data: dict[str, Any], environ: Mapping[str, str], prefix: str, cls: Any) -> None:
    for name, value in sorted(environ.items()):
        if not name.startswith(prefix):
            continue
        path = name[len(prefix) :].lower().split("__")
        # A key whose own name ends in _file (mqtt.ca_file) is set directly; otherwise _FILE means
        # "read this key's value from that file" (mqtt.password from CORDON_EDGE_MQTT__PASSWORD_FILE).
        if path[-1].endswith("_file") and not _is_field(cls, path):
            path[-1] = path[-1][: -len("_file")]
            try:
                value = Path(value).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(f"{name}: cannot read secret file: {exc}") from None
        node = data
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{name}: {key} is not a section")
            node = child
        node[path[-1]] = value


def _friendly(text: str) -> str:
    # msgspec says "at `$.mqtt.url`"; people write [mqtt] url.
    return text.replace("`$.", "`").replace("`$`", "the file")
