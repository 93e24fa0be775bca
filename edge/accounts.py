"""This checkpoint's officer accounts, synced from the hub, so officers sign in with the uplink down.

The hub publishes the whole set, retained, on ``cordon/v1/cp/{checkpoint}/accounts`` (argon2id
hashes, never passwords). The edge keeps the last set it received in ``accounts.json`` (replaced
atomically) and checks passwords against it locally. A disabled account or a new password (which
bumps the account's generation) ends the account's tablet sessions when the next set arrives.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import msgspec

from protocols.messages import OfficerAccount, OfficerAccounts
from runtime import passwords
from runtime.web import Principal

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(type=OfficerAccounts)


class OfficerDirectory:
    def __init__(self, path: str | Path, checkpoint: str) -> None:
        self.path = Path(path)
        self.checkpoint = checkpoint
        self._lock = threading.Lock()
        self._accounts: dict[str, OfficerAccount] = {}
        self.received_at: float | None = None

    def load(self) -> None:
        """Read the last set received (if any) at start-up."""
        try:
            accounts = _decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (msgspec.DecodeError, OSError) as exc:
            log.error(
                "officer accounts file %s unreadable (%s); officers need the access code until the hub "
                "sends them again",
                self.path,
                exc,
            )
            return
        self._set(accounts)

    def _set(self, accounts: OfficerAccounts) -> None:
        with self._lock:
            self._accounts = {a.username: a for a in accounts.accounts}
            self.received_at = accounts.sent_at

    def __len__(self) -> int:
        return len(self._accounts)

    def replace(self, accounts: OfficerAccounts) -> bool:
        """Take a set from the hub (the MQTT side calls it, from a thread); False if it is not ours."""
        if accounts.checkpoint != self.checkpoint:
            log.warning("ignoring officer accounts for %s", accounts.checkpoint[:64])
            return False
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(accounts))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._set(accounts)
        log.info("officer accounts: %d for %s", len(accounts.accounts), self.checkpoint)
        return True

    def authenticate(self, username: str, password: str) -> Principal | None:
        """Check a password against the synced hash (slow on purpose: call from a thread)."""
        with self._lock:
            account = self._accounts.get(username)
        if (
            not passwords.verify(account.password_hash if account else None, password)
            or account is None
            or account.disabled
        ):
            return None
        return Principal(account.username, "officer", self.checkpoint, account.generation)

    def still_valid(self, principal: Principal) -> bool:
        with self._lock:
            account = self._accounts.get(principal.name)
        if account is None:
            return principal.name == f"officer@{self.checkpoint}"  # the checkpoint's access code session
        return not account.disabled and account.generation == principal.generation
