"""TLS between nodes, pinned by the certificate fingerprint in the signed directory.

No public CA is involved: a node's self-signed certificate is named in its directory record
(SHA-256 of the DER certificate), and the client refuses any other certificate. TLS 1.3 only.
The envelope already protects content end to end; TLS adds forward secrecy on the wire and
hides which authorities talk to each other.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "certificate_fingerprint",
    "client_pin",
    "create_certificate",
    "peer_ssl",
    "server_context",
]


def create_certificate(cert_path: Path, key_path: Path, authority_id: str, host: str,
                       passphrase: bytes, *, days: int = 825) -> str:
    """Write a self-signed P-256 certificate and its encrypted key; return its fingerprint."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rogatory {authority_id}")])
    now = datetime.datetime.now(datetime.UTC)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return certificate_fingerprint(cert_path)


def certificate_fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def server_context(cert_path: Path, key_path: Path, passphrase: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(str(cert_path), str(key_path), password=passphrase)
    return context


@functools.lru_cache(maxsize=1024)
def client_pin(fingerprint_hex: str) -> aiohttp.Fingerprint:
    """aiohttp checks the peer's DER certificate hash against this pin on every connection.

    Cached so that one peer always gets the same pin object: aiohttp keys its connection pool
    on it, and a fresh object per attempt would force a new TLS handshake every time.
    """
    return aiohttp.Fingerprint(bytes.fromhex(fingerprint_hex))


def peer_ssl(endpoint: str, fingerprint: str) -> aiohttp.Fingerprint | bool:
    """What to pass as ``ssl=`` when calling a peer: its pin for HTTPS, nothing for plain HTTP."""
    return client_pin(fingerprint) if endpoint.startswith("https://") else True
