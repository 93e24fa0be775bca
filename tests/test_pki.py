"""`cordon pki`: the CA, node identities and revocation, checked with `cryptography` itself."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cordon.cli import main
from cordon.pki import Pki, PkiError


def cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def eku(c: x509.Certificate) -> list:
    return list(c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def sans(c: x509.Certificate) -> set:
    ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {
        str(a) for a in ext.get_values_for_type(x509.IPAddress)
    }


@pytest.fixture
def pki(tmp_path):
    p = Pki(tmp_path / "pki")
    p.init()
    return p


def test_init_makes_a_ca_with_a_private_key_and_an_empty_crl(pki):
    ca = cert(pki.root / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.verify_directly_issued_by(ca)
    assert (
        isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    )
    assert mode(pki.root / "ca.key") == 0o600
    crl = x509.load_pem_x509_crl((pki.root / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())
    assert len(crl) == 0
    with pytest.raises(PkiError, match="already holds a CA"):
        pki.init()


def test_issue_gives_a_checkpoint_its_client_and_server_certificates_and_signing_key(pki):
    folder = pki.issue("SD-DZ-001", ["edge-dz1.local", "10.20.0.5"])
    ca = cert(pki.root / "ca.crt")
    client, server = cert(folder / "client.crt"), cert(folder / "server.crt")
    for c in (client, server):
        c.verify_directly_issued_by(ca)
        assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "SD-DZ-001"
        assert not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert eku(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert sans(server) == {"edge-dz1.local", "10.20.0.5"}
    # the private keys belong to their certificates and nobody else may read them
    for crt, key in (("client.crt", "client.key"), ("server.crt", "server.key")):
        private = serialization.load_pem_private_key((folder / key).read_bytes(), None)
        assert private.public_key() == cert(folder / crt).public_key()
        assert mode(folder / key) == 0o600
    signing = serialization.load_pem_private_key((folder / "signing.key").read_bytes(), None)
    assert isinstance(signing, ed25519.Ed25519PrivateKey)
    assert mode(folder / "signing.key") == 0o600
    public = serialization.load_pem_public_key((folder / "signing.pub").read_bytes())
    public.verify(signing.sign(b"read"), b"read")  # raises if the pair does not match
    assert (folder / "ca.crt").read_bytes() == (pki.root / "ca.crt").read_bytes()


def test_issue_without_hosts_makes_no_server_certificate_and_server_names_are_checked(pki):
    folder = pki.issue("SD-LY-001")
    assert (folder / "client.crt").exists() and not (folder / "server.crt").exists()
    with pytest.raises(PkiError, match="neither an IP address nor a DNS name"):
        pki.issue_server("broker", ["bad host!"])
    with pytest.raises(PkiError, match="at least one host"):
        pki.issue_server("broker", [])
    with pytest.raises(PkiError, match="not a valid name"):
        pki.issue("SD/DZ/#")


def test_issue_server_for_the_broker(pki):
    folder = pki.issue_server("broker", ["mqtt.ring.example", "127.0.0.1", "::1"])
    server = cert(folder / "server.crt")
    server.verify_directly_issued_by(cert(pki.root / "ca.crt"))
    assert eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert sans(server) == {"mqtt.ring.example", "127.0.0.1", str(ipaddress.ip_address("::1"))}
    assert not (folder / "client.crt").exists()


def test_a_live_certificate_is_not_issued_twice_until_revoked(pki):
    pki.issue("SD-DZ-001")
    first = cert(pki.root / "SD-DZ-001" / "client.crt").serial_number
    signing = (pki.root / "SD-DZ-001" / "signing.key").read_bytes()
    with pytest.raises(PkiError, match="revoke it first"):
        pki.issue("SD-DZ-001")
    pki.revoke("SD-DZ-001")
    pki.issue("SD-DZ-001")
    assert cert(pki.root / "SD-DZ-001" / "client.crt").serial_number != first
    assert (pki.root / "SD-DZ-001" / "signing.key").read_bytes() == signing  # the node keeps its signing key


def test_revoke_puts_every_serial_of_the_name_on_the_crl(pki):
    folder = pki.issue("SD-DZ-001", ["10.0.0.9"])
    other = pki.issue("SD-LY-001")
    serials = {cert(folder / "client.crt").serial_number, cert(folder / "server.crt").serial_number}
    revoked = pki.revoke("SD-DZ-001")
    assert {int(r.serial, 16) for r in revoked} == serials
    crl = x509.load_pem_x509_crl((pki.root / "crl.pem").read_bytes())
    assert crl.is_signature_valid(cert(pki.root / "ca.crt").public_key())
    assert {r.serial_number for r in crl} == serials
    assert crl.get_revoked_certificate_by_serial_number(cert(other / "client.crt").serial_number) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    with pytest.raises(PkiError, match="no live certificate"):
        pki.revoke("SD-DZ-001")
    assert [r.revoked_at is not None for r in pki.records()] == [True, True, False]


def test_an_encrypted_ca_key_needs_its_passphrase(tmp_path):
    Pki(tmp_path / "pki", b"correct horse").init()
    assert b"ENCRYPTED" in (tmp_path / "pki" / "ca.key").read_bytes()
    with pytest.raises(PkiError, match="encrypted"):
        Pki(tmp_path / "pki").issue("SD-DZ-001")
    with pytest.raises(PkiError, match="wrong passphrase"):
        Pki(tmp_path / "pki", b"wrong").issue("SD-DZ-001")
    assert not (tmp_path / "pki" / "SD-DZ-001").exists()
    Pki(tmp_path / "pki", b"correct horse").issue("SD-DZ-001")
    assert (tmp_path / "pki" / "SD-DZ-001" / "client.crt").exists()


def test_the_command_line(tmp_path, capfd):
    d = str(tmp_path / "pki")
    secret = tmp_path / "pass"
    secret.write_text("s3cret\n")
    assert main(["pki", "init", "--dir", d, "--passphrase-file", str(secret)]) == 0
    assert (
        main(
            [
                "pki",
                "issue",
                "SD-DZ-001",
                "--dir",
                d,
                "--passphrase-file",
                str(secret),
                "--hosts",
                "edge1.local,10.1.1.1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "pki",
                "issue-server",
                "broker",
                "--dir",
                d,
                "--passphrase-file",
                str(secret),
                "--hosts",
                "127.0.0.1",
            ]
        )
        == 0
    )
    assert main(["pki", "issue", "SD-LY-001", "--dir", d]) == 1  # no passphrase: a clear error
    assert "passphrase" in capfd.readouterr().err
    assert main(["pki", "revoke", "SD-DZ-001", "--dir", d, "--passphrase-file", str(secret)]) == 0
    assert main(["pki", "crl", "--dir", d, "--passphrase-file", str(secret)]) == 0
    capfd.readouterr()
    assert main(["pki", "list", "--dir", d, "--json"]) == 0
    import json

    listed = json.loads(capfd.readouterr().out)
    assert [(r["name"], r["kind"], r["revoked_at"] is not None) for r in listed] == [
        ("SD-DZ-001", "client", True),
        ("SD-DZ-001", "server", True),
        ("broker", "server", False),
    ]
    assert main(["pki", "list", "--dir", str(tmp_path / "nothing")]) == 1
