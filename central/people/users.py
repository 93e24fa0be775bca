"""People and their roles, kept in the hub's store; passwords hashed with argon2id.

Roles (what each may do is the route policy in central/web/console.py and web_lists.py):

* ``officer``: works at one checkpoint (``checkpoint`` is required); signs in to that edge's tablet.
* ``commander``: shift commander; the live console, alerts including covert ones, the record.
* ``analyst``: the record and alerts including covert ones; searches need a reason.
* ``watchlist_manager``: lists and entries, imports and exports.
* ``admin``: everything, including accounts.
* ``auditor``: the audit trail only.

Every account has a session generation; disabling it or setting a new password bumps the generation,
which ends every session issued before (the web middleware checks it on each request against the
in-memory copy kept here). API tokens for machines are random, shown once, and stored as SHA-256
(they have full entropy, so a slow hash buys nothing).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from protocols.errors import CordonError
from runtime import passwords
from runtime.web import Principal, roles

ROLES = ("officer", "commander", "analyst", "watchlist_manager", "admin", "auditor")
#: Roles that see covert lists and their hits.
COVERT_ROLES = frozenset({"commander", "analyst", "admin"})
#: The command center's people (console, alerts, lists to read).
STAFF = roles("commander", "analyst", "watchlist_manager", "admin")
LIST_WRITERS = roles("watchlist_manager", "admin")
OPERATIONS = roles("commander", "admin")
AUDITORS = roles("auditor", "admin")
ADMINS = roles("admin")
#: Who may search the record of reads (with a reason, audited).
SEARCHERS = roles("commander", "analyst", "admin")
#: The name of the session the shared access code opens (not an account: spaces are not allowed there).
ACCESS_CODE_PRINCIPAL = "access code"
TOKEN_PREFIX = "cdt_"

_NAME = re.compile(r"^[A-Za-z0-9._@-]{2,64}$")


class UserError(CordonError, ValueError):
    """A request about accounts that cannot be done as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: str
    checkpoint: str | None
    disabled: bool
    generation: int
    created_at: float
    updated_at: float
    has_token: bool = False

    def principal(self) -> Principal:
        return Principal(self.username, self.role, self.checkpoint, self.generation)

    def public(self) -> dict[str, object]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "checkpoint": self.checkpoint,
            "disabled": self.disabled,
            "has_token": self.has_token,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def check_password_rules(password: str) -> None:
    if len(password) < 10:
        raise UserError("a password needs at least 10 characters")
    if len(password) > 256:
        raise UserError("a password has at most 256 characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return passwords.hash_password(password)


def validate(username: str, role: str, checkpoint: str | None) -> None:
    if not _NAME.match(username):
        raise UserError("a user name is 2 to 64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role == "officer" and not checkpoint:
        raise UserError("an officer is bound to a checkpoint: give --checkpoint")
    if role != "officer" and checkpoint:
        raise UserError("only officers are bound to a checkpoint")


def token_hash(token: str) -> str:
    """How an API token is kept: SHA-256 (it has full entropy, so a slow hash buys nothing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token_value() -> str:
    """A fresh API token, shown once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# -- read side -----------------------------------------------------------------------------------------
class Directory:
    """The accounts in memory for the request path: who is enabled, at which generation, token owners.

    Refreshed from the store after every change made through this process (``reload``)."""

    def __init__(self, load: Callable[[Any], Iterable[tuple[User, tuple[str, str | None]]]]) -> None:
        """``load``: every account with its password hash, read through a store transaction (the user
        store's ``directory``)."""
        self._load = load
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._hashes: dict[str, str] = {}
        self._tokens: dict[str, str] = {}

    def reload(self, tx: Any) -> None:
        """Read every account again through ``tx`` (a store transaction or read connection)."""
        users, hashes, tokens = {}, {}, {}
        for user, (password_hash, hashed_token) in self._load(tx):
            users[user.username] = user
            hashes[user.username] = password_hash
            if hashed_token:
                tokens[hashed_token] = user.username
        with self._lock:
            self._users, self._hashes, self._tokens = users, hashes, tokens

    def __len__(self) -> int:
        return len(self._users)

    def authenticate(self, username: str, password: str) -> Principal | None:
        """Check a password (slow on purpose: call from a thread); None for any failure."""
        with self._lock:
            user, stored = self._users.get(username), self._hashes.get(username)
        if (
            not passwords.verify(stored if user is not None else None, password)
            or user is None
            or user.disabled
        ):
            return None
        return user.principal()

    def by_token(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._lock:
            name = self._tokens.get(token_hash(token))
            user = self._users.get(name) if name else None
        return user.principal() if user is not None and not user.disabled else None

    def display_name(self, username: str) -> str:
        """The name to show for an account (its user name when it has none, or is not an account)."""
        with self._lock:
            user = self._users.get(username)
        return user.display_name if user is not None and user.display_name else username

    def still_valid(self, principal: Principal) -> bool:
        """Is a session of this principal still good (account enabled, same generation)?"""
        with self._lock:
            user = self._users.get(principal.name)
        if user is None:
            return (
                principal.name == ACCESS_CODE_PRINCIPAL
            )  # the shared access code's session (not an account)
        return not user.disabled and user.generation == principal.generation and user.role == principal.role


#: Who may see the command center's numbers (aggregates, no plates).
STATISTICIANS = roles("commander", "analyst", "admin", "auditor")
