"""Certificates for a local cluster that talks TLS (``mr cluster start --secure``) and for the
tests of TLS: a CA, a server certificate for 127.0.0.1, a client certificate, and another CA
with a client certificate the first did not sign. Needs the ``cryptography`` package (the
``test`` extra installs it): import this module only to make certificates."""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: How long the certificates are valid: a local cluster may run for weeks.
VALIDITY = datetime.timedelta(days=90)


def make_pki(directory: Path) -> Path:
    """``ca.pem``, ``server.pem``, ``client.pem``, ``stranger-ca.pem`` and ``stranger.pem``,
    each with its ``-key.pem`` (readable by its owner only), in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _issue(directory, "ca", "mr test CA", None, ca=True)
    _issue(directory, "server", "server", ca, server=True)
    _issue(directory, "client", "mr", ca)
    stranger = _issue(directory, "stranger-ca", "a CA the servers do not trust", None, ca=True)
    _issue(directory, "stranger", "mr", stranger)
    return directory


def _name(subject: str, client: bool = False):
    """A client certificate names no common name: with authentication on, etcd refuses a
    gateway request from a certificate with one (it would stand for the user otherwise)."""
    oid = NameOID.ORGANIZATION_NAME if client else NameOID.COMMON_NAME
    return x509.Name([x509.NameAttribute(oid, subject)])


def _issue(directory, name: str, subject: str, issuer: tuple | None, *, ca: bool = False,
           server: bool = False) -> tuple:
    """Write ``name``.pem and ``name``-key.pem: a certificate for ``subject``, signed by
    ``issuer`` (its certificate and key; None: itself)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_certificate, issuer_key = issuer or (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject, client=not (ca or server)))
               .issuer_name(issuer_certificate.subject if issuer_certificate else _name(subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + VALIDITY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file = directory / f"{name}-key.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate, key
