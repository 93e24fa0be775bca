"""Accounts on hub.db (``users``): add, change, list; what the in-memory directory and the officers'
edges are given. The roles and rules are ``central.people.users``."""

from __future__ import annotations

import time

import sqlite_utils

from central.people.users import (  # noqa: F401 - UserError and hash_password: a caller's one import
    User,
    UserError,
    hash_password,
    new_token_value,
    token_hash,
    validate,
)
from protocols.messages import SCHEMA_VERSION, OfficerAccount, OfficerAccounts

_COLUMNS = (
    "username, display_name, role, checkpoint, disabled, generation, created_at, updated_at, token_hash"
)


def _user(row: tuple) -> User:
    return User(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8] is not None)


# -- writer-thread operations (inside HubStore.run / submit jobs) ---
def add(
    db: sqlite_utils.Database,
    username: str,
    role: str,
    password_hash: str,
    *,
    display_name: str = "",
    checkpoint: str | None = None,
    now: float | None = None,
) -> User:
    validate(username, role, checkpoint)
    now = time.time() if now is None else now
    if db.conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
        raise UserError(f"user {username!r} exists already")
    db.conn.execute(
        "INSERT INTO users (username, display_name, role, checkpoint, password_hash, created_at, "
        "updated_at) VALUES (?,?,?,?,?,?,?)",
        (username, display_name or username, role, checkpoint, password_hash, now, now),
    )
    return get(db, username)


def get(db: sqlite_utils.Database, username: str) -> User:
    row = db.conn.execute(f"SELECT {_COLUMNS} FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise UserError(f"no user {username!r}")
    return _user(row)


def all_users(db: sqlite_utils.Database) -> list[User]:
    return [_user(r) for r in db.conn.execute(f"SELECT {_COLUMNS} FROM users ORDER BY username")]


def set_disabled(db: sqlite_utils.Database, username: str, disabled: bool) -> User:
    get(db, username)
    db.conn.execute(
        "UPDATE users SET disabled = ?, generation = generation + 1, updated_at = ? WHERE username = ?",
        (int(disabled), time.time(), username),
    )
    return get(db, username)


def set_password(db: sqlite_utils.Database, username: str, password_hash: str) -> User:
    get(db, username)
    db.conn.execute(
        "UPDATE users SET password_hash = ?, generation = generation + 1, updated_at = ? WHERE username = ?",
        (password_hash, time.time(), username),
    )
    return get(db, username)


def new_token(db: sqlite_utils.Database, username: str) -> str:
    """A fresh API token for the account (replacing any earlier one); returned once, stored hashed."""
    get(db, username)
    token = new_token_value()
    db.conn.execute(
        "UPDATE users SET token_hash = ?, updated_at = ? WHERE username = ?",
        (token_hash(token), time.time(), username),
    )
    return token


def officer_checkpoints(db: sqlite_utils.Database) -> list[str]:
    return [
        cp
        for (cp,) in db.conn.execute(
            "SELECT DISTINCT checkpoint FROM users WHERE role = 'officer' AND checkpoint IS NOT NULL ORDER BY checkpoint"
        )
    ]


def officer_accounts(db: sqlite_utils.Database, checkpoint: str) -> OfficerAccounts:
    """What a checkpoint's edge gets: its officers' hashes and state (retained on its accounts topic)."""
    rows = db.conn.execute(
        "SELECT username, display_name, password_hash, disabled, generation FROM users "
        "WHERE role = 'officer' AND checkpoint = ? ORDER BY username",
        (checkpoint,),
    )
    return OfficerAccounts(
        v=SCHEMA_VERSION,
        checkpoint=checkpoint,
        sent_at=time.time(),
        accounts=[
            OfficerAccount(username=u, display_name=d, password_hash=h, disabled=bool(x), generation=g)
            for u, d, h, x, g in rows
        ],
    )


def directory(db: sqlite_utils.Database) -> list[tuple[User, tuple[str, str | None]]]:
    """Every account with its password hash and token hash (``Directory``'s ``load``)."""
    return [
        (_user(row[:9]), (row[9], row[8]))
        for row in db.conn.execute(f"SELECT {_COLUMNS}, password_hash FROM users")
    ]


def signature(db: sqlite_utils.Database) -> tuple[int, float | None, float]:
    """What changes when any account changes (count, last change, generations), to notice another
    process's changes without reading every account."""
    return tuple(db.conn.execute("SELECT count(*), max(updated_at), total(generation) FROM users").fetchone())


class SqliteUserStore:
    """``UserStore`` on hub.db: the functions above, as the store's ``users``."""

    add = staticmethod(add)
    get = staticmethod(get)
    all_users = staticmethod(all_users)
    set_disabled = staticmethod(set_disabled)
    set_password = staticmethod(set_password)
    new_token = staticmethod(new_token)
    officer_checkpoints = staticmethod(officer_checkpoints)
    officer_accounts = staticmethod(officer_accounts)
    directory = staticmethod(directory)
    signature = staticmethod(signature)
