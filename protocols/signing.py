"""Ed25519 signatures on MQTT messages, so a compromised broker cannot forge reads, acks or deltas.

A signed message is the JSON message with one more member at its very end::

    {"v":1,"checkpoint":"SD-DZ-001",...,"sig":"<86 characters of base64url>"}

The signature covers the message exactly as it was before the member was added (the same bytes
with ``,"sig":"..."`` removed), so no re-encoding or canonical form is involved: the receiver cuts
the member off, verifies those bytes with the sender's public key, and decodes them as usual (the
message types themselves do not know about signatures). Who signs: each checkpoint signs what it
publishes with its own key, the hub signs what it publishes with its key (``cordon pki`` makes the
keys). An empty payload (clearing a retained topic) is never signed.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import CordonError

_SUFFIX = re.compile(rb',"sig":"([A-Za-z0-9_-]{86})"\}\Z')


class SignatureError(CordonError, ValueError):
    """A message that is unsigned where a signature is required, or whose signature does not verify."""


def sign(payload: bytes, key: Ed25519PrivateKey) -> bytes:
    """Append the signature member to a JSON object."""
    if not payload.endswith(b"}"):
        raise ValueError("only a JSON object can be signed")
    signature = base64.urlsafe_b64encode(key.sign(payload)).rstrip(b"=")
    return payload[:-1] + b',"sig":"' + signature + b'"}'


def split(payload: bytes) -> tuple[bytes, bytes | None]:
    """The message without its signature member, and the signature (None when unsigned)."""
    match = _SUFFIX.search(payload)
    if match is None:
        return payload, None
    try:
        signature = base64.urlsafe_b64decode(match.group(1) + b"==")
    except (binascii.Error, ValueError):
        return payload, None
    return payload[: match.start()] + b"}", signature


def open_signed(payload: bytes, key: Ed25519PublicKey | None, *, required: bool) -> bytes:
    """Verify and strip the signature; return the bytes to decode. Raises SignatureError.

    Without a key nothing can be checked: the signature member (if any) is only removed, and a
    ``required`` signature cannot be satisfied."""
    message, signature = split(payload)
    if signature is None:
        if required:
            raise SignatureError("unsigned message where a signature is required")
        return message
    if key is None:
        if required:
            raise SignatureError("no public key to check this sender's signature with")
        return message
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise SignatureError("signature does not verify with the sender's key") from None
    return message
