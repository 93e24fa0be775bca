"""Cordon's own small certificate authority: the identities of the ring's broker, hub and edges.

One folder holds the CA and everything it issued::

    DIR/ca.crt  ca.key  crl.pem  index.json
    DIR/<name>/ca.crt              a copy, so each folder is everything one machine needs
    DIR/<name>/client.crt .key     MQTT client identity (CN = name = the MQTT user name), clientAuth
    DIR/<name>/server.crt .key     TLS server certificate with SANs (edge tablet app, hub, broker), serverAuth
    DIR/<name>/signing.key .pub    Ed25519 key for signing messages (a checkpoint's reads, the hub's deltas)

Every key is EC P-256 (which OpenSSL, so Mosquitto, accepts everywhere) except the Ed25519 signing
keys. Private keys are written 0600; the CA key may be encrypted with a passphrase. ``index.json``
records every certificate issued, so ``revoke`` can put a name's serials on the CRL that Mosquitto's
``crlfile`` reads. The command line (``cordon pki``) is a thin layer over :class:`Pki`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocols.errors import CordonError
from protocols.topics import valid_checkpoint_id

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CRL_FILE = "crl.pem"
INDEX_FILE = "index.json"
CLIENT_CERT, CLIENT_KEY = "client.crt", "client.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
SIGNING_KEY, SIGNING_PUB = "signing.key", "signing.pub"

CA_DAYS = 3650
LEAF_DAYS = 825
#: OpenSSL refuses every client once the CRL's next update has passed: re-sign it (``cordon pki crl``) before.
CRL_DAYS = 365
_DNS_RE = re.compile(
    r"^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


class PkiError(CordonError, RuntimeError):
    """A PKI operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Record:
    """One issued certificate, as ``index.json`` keeps it."""

    name: str
    kind: str  # "client" or "server"
    serial: str  # hex
    not_after: str  # ISO 8601, UTC
    hosts: list[str]
    revoked_at: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically; a private file is 0600 from its first byte (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_signing_key(folder: Path) -> bool:
    """A node's Ed25519 signing key in ``folder`` (``signing.key`` 0600, ``signing.pub``) unless it has one;
    True when it was made now."""
    if (folder / SIGNING_KEY).exists():
        return False
    signing = ed25519.Ed25519PrivateKey.generate()
    _write(folder / SIGNING_KEY, _key_pem(signing), private=True)
    _write(
        folder / SIGNING_PUB,
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        private=False,
    )
    return True


def _key_pem(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, passphrase: bytes | None = None
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def parse_hosts(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Subject alternative names from host names and IP addresses; a malformed one is an error."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        host = host.strip()
        if not host:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not _DNS_RE.match(host):
            raise PkiError(f"{host!r} is neither an IP address nor a DNS name")
        names.append(x509.DNSName(host.lower()))
    return names


def _check_name(name: str) -> None:
    # Names become folder names, certificate CNs and (for clients) MQTT user names inside ACL patterns.
    if not valid_checkpoint_id(name):
        raise PkiError(f"{name!r} is not a valid name (letters, digits, '-' and '_', at most 64)")


class Pki:
    """The CA folder ``root``; ``passphrase`` unlocks an encrypted CA key."""

    def __init__(self, root: str | Path, passphrase: bytes | None = None) -> None:
        self.root = Path(root)
        self.passphrase = passphrase or None

    # -- the CA ---------------------------------------------------------------------------------
    def init(self, common_name: str = "Cordon CA", days: int = CA_DAYS) -> Path:
        """Create the CA (key, self-signed certificate, empty CRL, index); refuses to overwrite one."""
        if (self.root / CA_KEY).exists() or (self.root / CA_CERT).exists():
            raise PkiError(f"{self.root} already holds a CA; use another --dir")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cordon"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(self.root / CA_KEY, _key_pem(key, self.passphrase), private=True)
        _write(self.root / CA_CERT, cert.public_bytes(serialization.Encoding.PEM), private=False)
        self._save_index([])
        self.write_crl()
        return self.root / CA_CERT

    def ca_cert(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate((self.root / CA_CERT).read_bytes())
        except FileNotFoundError:
            raise PkiError(f"no CA in {self.root}: run `cordon pki init --dir {self.root}` first") from None

    def _ca_key(self) -> ec.EllipticCurvePrivateKey:
        try:
            data = (self.root / CA_KEY).read_bytes()
        except FileNotFoundError:
            raise PkiError(
                f"no CA key in {self.root}: run `cordon pki init --dir {self.root}` first"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, self.passphrase)
        except TypeError:
            if self.passphrase is None:
                raise PkiError("the CA key is encrypted: give its passphrase (--passphrase-file)") from None
            raise PkiError("the CA key is not encrypted: drop --passphrase-file") from None
        except ValueError:
            raise PkiError("cannot unlock the CA key: wrong passphrase?") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.root / CA_KEY} is not an EC key")
        return key

    # -- issuing ---------------------------------------------------------------------------------
    def issue(self, name: str, hosts: Iterable[str] = (), days: int = LEAF_DAYS) -> Path:
        """A node's identity: client certificate (CN = name), Ed25519 signing key, and, when
        ``hosts`` are given, a server certificate for its web app. Returns the node's folder."""
        _check_name(name)
        sans = parse_hosts(hosts)
        self._refuse_live(name, "client")
        if sans:
            self._refuse_live(name, "server")
        folder = self.root / name
        self._leaf(name, "client", [], days, folder / CLIENT_CERT, folder / CLIENT_KEY)
        if sans:
            self._leaf(name, "server", sans, days, folder / SERVER_CERT, folder / SERVER_KEY)
        write_signing_key(folder)  # a reissued certificate keeps the node's signing key
        self._copy_ca(folder)
        return folder

    def issue_server(self, name: str, hosts: Iterable[str], days: int = LEAF_DAYS) -> Path:
        """A server certificate only (the broker, or a hub whose client identity is issued apart)."""
        _check_name(name)
        sans = parse_hosts(hosts)
        if not sans:
            raise PkiError("a server certificate needs at least one host name or IP address (--hosts)")
        self._refuse_live(name, "server")
        folder = self.root / name
        self._leaf(name, "server", sans, days, folder / SERVER_CERT, folder / SERVER_KEY)
        self._copy_ca(folder)
        return folder

    def _refuse_live(self, name: str, kind: str) -> None:
        for record in self.records():
            if record.name == name and record.kind == kind and record.revoked_at is None:
                raise PkiError(
                    f"{name} already has a live {kind} certificate (serial {record.serial}); "
                    f"revoke it first: cordon pki revoke {name}"
                )

    def _leaf(
        self, name: str, kind: str, sans: list[x509.GeneralName], days: int, cert_path: Path, key_path: Path
    ) -> x509.Certificate:
        ca_key = self._ca_key()
        ca = self.ca_cert()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if kind == "client" else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cordon"),
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                    ]
                )
            )
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(key_path, _key_pem(key), private=True)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
        records = self.records()
        records.append(
            Record(
                name=name,
                kind=kind,
                serial=format(cert.serial_number, "x"),
                not_after=cert.not_valid_after_utc.isoformat(),
                hosts=[str(n.value) for n in sans],
            )
        )
        self._save_index(records)
        return cert

    def _copy_ca(self, folder: Path) -> None:
        _write(folder / CA_CERT, (self.root / CA_CERT).read_bytes(), private=False)

    # -- revocation ------------------------------------------------------------------------------
    def revoke(self, name: str) -> list[Record]:
        """Revoke every live certificate of ``name`` and rewrite the CRL; returns what was revoked."""
        ca_key = self._ca_key()  # fail before changing anything when the CA cannot sign
        now = _now().isoformat()
        revoked: list[Record] = []
        records = []
        for record in self.records():
            if record.name == name and record.revoked_at is None:
                record = Record(**{**asdict(record), "revoked_at": now})
                revoked.append(record)
            records.append(record)
        if not revoked:
            raise PkiError(f"{name} has no live certificate in {self.root}")
        self._save_index(records)
        self.write_crl(ca_key=ca_key)
        return revoked

    def write_crl(self, days: int = CRL_DAYS, ca_key: ec.EllipticCurvePrivateKey | None = None) -> Path:
        """Sign a fresh CRL holding every revoked serial; the CRL number only grows."""
        ca_key = ca_key or self._ca_key()
        ca = self.ca_cert()
        now = _now()
        number = 1
        old = self.root / CRL_FILE
        if old.exists():
            previous = x509.load_pem_x509_crl(old.read_bytes())
            try:
                number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
            except x509.ExtensionNotFound:
                pass
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=days))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        for record in self.records():
            if record.revoked_at is not None:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(record.serial, 16))
                    .revocation_date(dt.datetime.fromisoformat(record.revoked_at))
                    .build()
                )
        crl = builder.sign(ca_key, hashes.SHA256())
        _write(old, crl.public_bytes(serialization.Encoding.PEM), private=False)
        return old

    # -- the index -------------------------------------------------------------------------------
    def records(self) -> list[Record]:
        path = self.root / INDEX_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PkiError(f"no CA in {self.root}: run `cordon pki init --dir {self.root}` first") from None
        except ValueError as exc:
            raise PkiError(f"{path} is damaged: {exc}") from None
        return [Record(**item) for item in raw]

    def _save_index(self, records: list[Record]) -> None:
        text = json.dumps([asdict(r) for r in records], indent=1, ensure_ascii=False)
        _write(self.root / INDEX_FILE, text.encode("utf-8"), private=False)
