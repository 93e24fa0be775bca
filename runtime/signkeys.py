"""Loading the Ed25519 signing keys ``cordon pki`` writes (PEM), with errors that name the file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .config import SettingsError


def private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SettingsError(f"signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SettingsError(f"signing key {path} is not an Ed25519 key")
    return key


def public_key(path: str | Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SettingsError(f"public key {path} is not an Ed25519 key")
    return key


class PublicKeys:
    """Each checkpoint's public key, from ``<keys_dir>/<checkpoint>/signing.pub`` (as ``cordon pki`` lays
    them out), read on first use and kept; a missing file means "no key" (None)."""

    def __init__(self, keys_dir: str | Path) -> None:
        self.keys_dir = Path(keys_dir)
        self._get = lru_cache(maxsize=4096)(self._load)

    def _load(self, checkpoint: str) -> Ed25519PublicKey | None:
        path = self.keys_dir / checkpoint / "signing.pub"
        return public_key(path) if path.is_file() else None

    def __call__(self, checkpoint: str) -> Ed25519PublicKey | None:
        return self._get(checkpoint)
