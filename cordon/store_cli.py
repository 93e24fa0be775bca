"""``cordon store migrate``: thin over :mod:`central.record.migrate`, with a progress bar on standard error
and the summary as one JSON line on standard output. Also where the command line finds the hub's
settings from ``--config``/``--data`` (``cordon user``, ``cordon audit``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TextIO

import msgspec

from central.record.migrate import BATCH, Step, Summary, migrate
from central.settings import HubSettings, load_settings
from protocols.errors import CordonError


class StoreCliError(CordonError, RuntimeError):
    """Something to report in one line."""


def hub_settings(config: str | None, data: str | None) -> HubSettings:
    """The hub's settings from ``--config`` (hub.toml, with its environment overrides), its ``data_dir``
    replaced by ``--data`` when given; without ``--config``, the defaults with ``--data`` (or ./data/hub)."""
    if config:
        settings = load_settings(config)
        if data:
            settings = msgspec.structs.replace(settings, data_dir=data)
        return settings
    return HubSettings(data_dir=data or "./data/hub")


def run_migrate(
    config: str | None,
    data: str | None,
    dsn: str | None,
    password_file: str | None,
    batch: int = BATCH,
    progress: Any = None,
) -> Summary:
    """The SQLite hub's folder (``--data``, or the config's ``data_dir``) into the PostgreSQL store
    (``--dsn``, or the config's ``[store] dsn``), with the password from ``--password-file`` or the config."""
    if not config and not data:
        raise StoreCliError("say which hub: --config hub.toml (its data_dir and [store]) or --data DIR")
    settings = hub_settings(config, data)
    target = dsn or settings.store.dsn
    if not target:
        raise StoreCliError(
            "say where to: [store] dsn in the hub's configuration (--config), or --dsn 'host=... dbname=...'"
        )
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StoreCliError(f"cannot read {password_file}: {exc.strerror or exc}") from None
    else:
        password = settings.store.database_password()
    if batch < 1:
        raise StoreCliError("--batch must be at least 1")
    from central.record.postgresql.connections import with_password

    return migrate(
        settings.data_path,
        with_password(target, password),
        utc_offset=settings.record.utc_offset,
        batch=batch,
        progress=progress,
    )


class Bar:
    """The progress of a migration on a stream: on a terminal one line redrawn in place (a bar per part,
    rows done of rows there are), a line kept for each part done; elsewhere plain lines, one when a part is
    done and one every ``every_s`` seconds within a long part."""

    def __init__(
        self, stream: TextIO, tty: bool | None = None, width: int = 24, every_s: float = 10.0
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.width = width
        self.every_s = every_s
        self._last = float("-inf")
        self._drawn = False

    def __call__(self, step: Step) -> None:
        finished = step.copied >= step.total
        label = f"[{step.index}/{step.parts}] {step.part:<20}"
        count = f"{step.copied:>11,}/{step.total:,} rows"
        if self.tty:
            filled = self.width * step.copied // step.total if step.total else self.width
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{label} {bar} {count}\x1b[K" + ("\n" if finished else ""))
            self._drawn = not finished
        else:
            now = time.monotonic()
            if not finished and now - self._last < self.every_s:
                return
            self._last = now
            self.stream.write(f"{label} {count}{'' if finished else ' ...'}\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line left drawn (an interruption)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
