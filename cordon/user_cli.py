"""``cordon user add|list|disable|enable|reset-password|token``: accounts, on the hub's store directly.

Run it on the hub machine (it opens ``<data_dir>/hub.db`` through the same single-writer store the hub
uses; SQLite serialises the two). A running hub picks the change up within seconds, so disabling an
account ends its sessions. Every change is audited with the operating-system user as the actor.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

from central.people import users
from central.record.sqlite import audit
from central.record.sqlite import users as user_store
from central.record.sqlite.store import HubStore
from protocols.errors import CordonError


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


def _with_store(data_dir: str, job: Any) -> Any:
    store = HubStore(Path(data_dir) / "hub.db")
    store.start()
    try:
        return store.submit(job).result()
    except users.UserError as exc:
        raise UserCliError(str(exc)) from None
    finally:
        store.stop()


def add(
    data_dir: str, username: str, role: str, password: str, checkpoint: str | None, display_name: str
) -> users.User:
    hashed = users.hash_password(password)

    def job(db: Any) -> users.User:
        user = user_store.add(db, username, role, hashed, display_name=display_name, checkpoint=checkpoint)
        audit.append(
            db, _actor(), "", "user.add", target=username, detail={"role": role, "checkpoint": checkpoint}
        )
        return user

    return _with_store(data_dir, job)


def listing(data_dir: str) -> list[users.User]:
    return _with_store(data_dir, user_store.all_users)


def set_disabled(data_dir: str, username: str, disabled: bool) -> users.User:
    def job(db: Any) -> users.User:
        user = user_store.set_disabled(db, username, disabled)
        audit.append(db, _actor(), "", "user.disable" if disabled else "user.enable", target=username)
        return user

    return _with_store(data_dir, job)


def reset_password(data_dir: str, username: str, password: str) -> users.User:
    hashed = users.hash_password(password)

    def job(db: Any) -> users.User:
        user = user_store.set_password(db, username, hashed)
        audit.append(db, _actor(), "", "user.password", target=username)
        return user

    return _with_store(data_dir, job)


def token(data_dir: str, username: str) -> str:
    def job(db: Any) -> str:
        value = user_store.new_token(db, username)
        audit.append(db, _actor(), "", "user.token", target=username)
        return value

    return _with_store(data_dir, job)
