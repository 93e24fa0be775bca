"""``cordon user add|list|disable|enable|reset-password|token``: accounts, on the hub's store directly.

Run it on the hub machine, or anywhere that reaches the hub's database: it opens the store the hub's
settings name (``--config``: hub.db under ``data_dir``, or PostgreSQL with ``[store] backend =
"postgresql"``; ``--data``: hub.db in that folder) through the factory and the stores' Protocols, as the
hub does (on SQLite the single-writer store, which SQLite serialises with a running hub's). A running hub
picks the change up within seconds, so disabling an account ends its sessions. Every change is audited
with the operating-system user as the actor.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from central.people import users
from central.record.factory import open_store
from central.record.stores import HubStores
from central.settings import HubSettings
from protocols.errors import CordonError

T = TypeVar("T")


class UserCliError(CordonError, RuntimeError):
    """Something to report in one line."""


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in a bare container
        return f"cli:uid{os.getuid()}"


def read_password(password_file: str | None, *, confirm: bool = True) -> str:
    if password_file:
        password = Path(password_file).read_text(encoding="utf-8").rstrip("\n")
    elif not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if confirm and getpass.getpass("again: ") != password:
            raise UserCliError("the two passwords differ")
    try:
        users.check_password_rules(password)
    except users.UserError as exc:
        raise UserCliError(str(exc)) from None
    return password


def _with_store(settings: HubSettings, job: Callable[[HubStores, Any], T]) -> T:
    """Run ``job(store, tx)`` in one write transaction of the hub's store (made, on a new one)."""
    store = open_store(settings)
    store.start()
    try:
        return store.submit(lambda tx: job(store, tx)).result()
    except users.UserError as exc:
        raise UserCliError(str(exc)) from None
    finally:
        store.stop()


def add(
    settings: HubSettings,
    username: str,
    role: str,
    password: str,
    checkpoint: str | None,
    display_name: str,
) -> users.User:
    hashed = users.hash_password(password)

    def job(store: HubStores, tx: Any) -> users.User:
        user = store.users.add(tx, username, role, hashed, display_name=display_name, checkpoint=checkpoint)
        store.audit.append(
            tx, _actor(), "", "user.add", target=username, detail={"role": role, "checkpoint": checkpoint}
        )
        return user

    return _with_store(settings, job)


def listing(settings: HubSettings) -> list[users.User]:
    return _with_store(settings, lambda store, tx: store.users.all_users(tx))


def set_disabled(settings: HubSettings, username: str, disabled: bool) -> users.User:
    def job(store: HubStores, tx: Any) -> users.User:
        user = store.users.set_disabled(tx, username, disabled)
        store.audit.append(tx, _actor(), "", "user.disable" if disabled else "user.enable", target=username)
        return user

    return _with_store(settings, job)


def reset_password(settings: HubSettings, username: str, password: str) -> users.User:
    hashed = users.hash_password(password)

    def job(store: HubStores, tx: Any) -> users.User:
        user = store.users.set_password(tx, username, hashed)
        store.audit.append(tx, _actor(), "", "user.password", target=username)
        return user

    return _with_store(settings, job)


def token(settings: HubSettings, username: str) -> str:
    def job(store: HubStores, tx: Any) -> str:
        value = store.users.new_token(tx, username)
        store.audit.append(tx, _actor(), "", "user.token", target=username)
        return value

    return _with_store(settings, job)
