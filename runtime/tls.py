"""TLS contexts from settings, shared by the edge and the hub (MQTT client, HTTPS server, HTTPS client).

Both sides name their files the same way (``ca_file``, ``cert_file``, ``key_file``); the contexts are
built at start-up, so a missing or unreadable file stops the program with a message naming the key
instead of surfacing later as a reconnect loop.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from .config import SettingsError

MQTT_PORT = 1883
MQTTS_PORT = 8883


def _load_chain(ctx: ssl.SSLContext, cert_file: str, key_file: str | None, section: str) -> None:
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise SettingsError(
            f"[{section}] cert_file / key_file: {exc.filename or cert_file}: not found"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"[{section}] cert_file {cert_file} / key_file {key_file}: cannot load: {exc}"
        ) from None


def _check_pair(cert_file: str | None, key_file: str | None, section: str) -> None:
    if bool(cert_file) != bool(key_file):
        raise SettingsError(f"[{section}] cert_file and key_file go together: set both or neither")


def client_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, section: str
) -> ssl.SSLContext:
    """Verifies the server against ``ca_file`` (or the system's CAs) and its host name; presents
    ``cert_file`` when given (the node's client certificate)."""
    _check_pair(cert_file, key_file, section)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise SettingsError(f"[{section}] ca_file {ca_file}: not found") from None
        except ssl.SSLError as exc:
            raise SettingsError(f"[{section}] ca_file {ca_file}: not a CA certificate: {exc}") from None
    if cert_file:
        _load_chain(ctx, cert_file, key_file, section)
    return ctx


def server_context(
    cert_file: str,
    key_file: str | None,
    section: str,
    client_ca_file: str | None = None,
    crl_file: str | None = None,
) -> ssl.SSLContext:
    """An HTTPS server's context; with ``client_ca_file`` it asks for (but does not demand) client
    certificates from that CA, so browsers without one still reach the login page; a certificate on
    ``crl_file`` fails the handshake."""
    _check_pair(cert_file, key_file, section)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, cert_file, key_file, section)
    if client_ca_file:
        try:
            ctx.load_verify_locations(cafile=client_ca_file)
        except (FileNotFoundError, ssl.SSLError) as exc:
            raise SettingsError(f"[{section}] ca_file {client_ca_file}: {exc}") from None
        ctx.verify_mode = ssl.CERT_OPTIONAL
        if crl_file:
            try:
                ctx.load_verify_locations(cafile=crl_file)
            except (FileNotFoundError, ssl.SSLError) as exc:
                raise SettingsError(f"[{section}] crl_file {crl_file}: {exc}") from None
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    elif crl_file:
        raise SettingsError(f"[{section}] crl_file needs ca_file")
    return ctx


def mqtt_endpoint(
    url: str, ca_file: str | None, cert_file: str | None, key_file: str | None, section: str = "mqtt"
) -> tuple[str, int, ssl.SSLContext | None]:
    """Host, port and TLS context of an ``mqtt://`` or ``mqtts://`` URL (TLS only with ``mqtts``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise SettingsError(f"[{section}] url {url!r}: the scheme must be mqtt:// or mqtts://")
    tls = parts.scheme == "mqtts"
    if not tls and (ca_file or cert_file or key_file):
        raise SettingsError(
            f"[{section}] ca_file / cert_file / key_file are set but url {url!r} is not "
            "mqtts://: the certificates would not be used"
        )
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(f"[{section}] url {url!r}: bad port") from None
    context = client_context(ca_file, cert_file, key_file, section) if tls else None
    return parts.hostname or "127.0.0.1", port or (MQTTS_PORT if tls else MQTT_PORT), context
