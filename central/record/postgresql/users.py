"""Accounts on PostgreSQL (``users``): ``UserStore`` as ``central.record.sqlite.users`` does it on hub.db.
The roles and rules are ``central.people.users``; the display name is kept as bytes (``bytea``), so
whatever an admin typed comes back exactly, a NUL included."""

from __future__ import annotations

import time

import psycopg

from central.people.users import User, UserError, new_token_value, token_hash, validate
from protocols.messages import SCHEMA_VERSION, OfficerAccount, OfficerAccounts

_COLUMNS = (
    "username, display_name, role, checkpoint, disabled, generation, created_at, updated_at, token_hash"
)


def _text(raw: bytes) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _user(row: tuple) -> User:
    return User(
        row[0], _text(row[1]), row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8] is not None
    )


class PgUserStore:
    """``UserStore`` on PostgreSQL; every method takes the store's transaction (a psycopg connection)."""

    @staticmethod
    def add(
        tx: psycopg.Connection,
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
        added = tx.execute(
            "INSERT INTO users (username, display_name, role, checkpoint, password_hash, created_at, "
            "updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (username) DO NOTHING RETURNING 1",
            (username, _bytes(display_name or username), role, checkpoint, password_hash, now, now),
        ).fetchone()
        if added is None:
            raise UserError(f"user {username!r} exists already")
        return PgUserStore.get(tx, username)

    @staticmethod
    def get(tx: psycopg.Connection, username: str) -> User:
        row = tx.execute(f"SELECT {_COLUMNS} FROM users WHERE username = %s", (username,)).fetchone()
        if row is None:
            raise UserError(f"no user {username!r}")
        return _user(row)

    @staticmethod
    def all_users(tx: psycopg.Connection) -> list[User]:
        return [_user(r) for r in tx.execute(f'SELECT {_COLUMNS} FROM users ORDER BY username COLLATE "C"')]

    @staticmethod
    def _change(tx: psycopg.Connection, username: str, assignments: str, args: tuple) -> User:
        row = tx.execute(
            f"UPDATE users SET {assignments}, updated_at = %s WHERE username = %s RETURNING {_COLUMNS}",
            (*args, time.time(), username),
        ).fetchone()
        if row is None:
            raise UserError(f"no user {username!r}")
        return _user(row)

    @staticmethod
    def set_disabled(tx: psycopg.Connection, username: str, disabled: bool) -> User:
        return PgUserStore._change(tx, username, "disabled = %s, generation = generation + 1", (disabled,))

    @staticmethod
    def set_password(tx: psycopg.Connection, username: str, password_hash: str) -> User:
        return PgUserStore._change(
            tx, username, "password_hash = %s, generation = generation + 1", (password_hash,)
        )

    @staticmethod
    def new_token(tx: psycopg.Connection, username: str) -> str:
        """A fresh API token for the account (replacing any earlier one); returned once, stored hashed."""
        token = new_token_value()
        PgUserStore._change(tx, username, "token_hash = %s", (token_hash(token),))
        return token

    @staticmethod
    def officer_checkpoints(tx: psycopg.Connection) -> list[str]:
        return [
            cp
            for (cp,) in tx.execute(
                "SELECT DISTINCT checkpoint COLLATE \"C\" FROM users WHERE role = 'officer' "
                "AND checkpoint IS NOT NULL ORDER BY 1"
            )
        ]

    @staticmethod
    def officer_accounts(tx: psycopg.Connection, checkpoint: str) -> OfficerAccounts:
        """What a checkpoint's edge gets: its officers' hashes and state (retained on its accounts topic)."""
        rows = tx.execute(
            "SELECT username, display_name, password_hash, disabled, generation FROM users "
            "WHERE role = 'officer' AND checkpoint = %s ORDER BY username COLLATE \"C\"",
            (checkpoint,),
        ).fetchall()
        return OfficerAccounts(
            v=SCHEMA_VERSION,
            checkpoint=checkpoint,
            sent_at=time.time(),
            accounts=[
                OfficerAccount(username=u, display_name=_text(d), password_hash=h, disabled=x, generation=g)
                for u, d, h, x, g in rows
            ],
        )

    @staticmethod
    def directory(tx: psycopg.Connection) -> list[tuple[User, tuple[str, str | None]]]:
        """Every account with its password hash and token hash (``Directory``'s ``load``)."""
        return [
            (_user(row[:9]), (row[9], row[8]))
            for row in tx.execute(f"SELECT {_COLUMNS}, password_hash FROM users")
        ]

    @staticmethod
    def signature(tx: psycopg.Connection) -> tuple[int, float | None, float]:
        """What changes when any account changes (count, last change, generations)."""
        count, last, generations = tx.execute(
            "SELECT count(*), max(updated_at), coalesce(sum(generation), 0) FROM users"
        ).fetchone()  # type: ignore[misc]
        return int(count), last, float(generations)
