"""Setting a node up on disk: config, key store, TLS certificate, API token, signed record.

``rogatory init`` and the demo both go through here, so the demo exercises exactly what an
operator runs. The authority's signed directory record is written next to the config: it is
what the authority sends to the federation secretariat to be listed, and it is re-signed
whenever the prekeys rotate.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from keys.directory import AuthorityRecord, SignedRecord, sign_record
from keys.keystore import KeyStore
from node.config import CONFIG_NAME, NodeConfig, render_config
from node.tls import create_certificate
from protocol.errors import ConfigError, DirectoryAuthorityIdInvalid
from protocol.header import is_authority_id
from protocol.suites import Suite

__all__ = ["PROFILE_FIELDS", "initialise_node", "refresh_record", "write_private"]

PROFILE_FIELDS = (
    "languages",
    "office_hours",
    "time_zone",
    "request_types",
    "legal_bases",
    "channels",
    "formats",
    "urgent_procedure",
    "contact_24_7",
    "notes",
)
"""The UNODC directory fields an authority states about itself."""


def write_private(path: Path, data: bytes) -> None:
    """Create a secret file readable by its owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _record_json(signed: SignedRecord) -> bytes:
    return json.dumps(signed.to_json(), indent=2).encode() + b"\n"


def initialise_node(
    home: Path,
    *,
    authority: str,
    name: str,
    passphrase: bytes,
    now: int,
    peer_host: str = "127.0.0.1",
    peer_port: int = 8443,
    api_port: int = 8080,
    web_port: int | None = None,
    tls: bool = True,
    secretariat: tuple[str, ...] = (),
    threshold: int = 1,
    profile: dict[str, Any] | None = None,
    suite: Suite = Suite.HYBRID,
    keystore_limits: dict[str, int] | None = None,
    delivery: dict[str, Any] | None = None,
) -> SignedRecord:
    if not is_authority_id(authority):
        raise DirectoryAuthorityIdInvalid(f"{authority!r}: use CC:NAME, e.g. FR:MJ")
    home.mkdir(parents=True, exist_ok=True)
    if (home / CONFIG_NAME).exists():
        raise ConfigError(f"{home} already holds a node; choose an empty folder")
    config = NodeConfig(
        home=home.resolve(), authority=authority, peer_host=peer_host, peer_port=peer_port,
        tls=tls, api_port=api_port, secretariat=secretariat, threshold=threshold,
        web_enabled=web_port is not None, web_port=8090 if web_port is None else web_port,
        **(delivery or {}),
    )
    keystore = KeyStore.create(config.keystore_path, passphrase, authority, now, suite=suite,
                               **(keystore_limits or {}))
    fingerprint = ""
    if tls:
        fingerprint = create_certificate(config.cert_path, config.tls_key_path, authority,
                                         peer_host, passphrase)
    write_private(config.api_token_path, secrets.token_urlsafe(32).encode() + b"\n")
    write_private(config.receiver_token_path, secrets.token_urlsafe(32).encode() + b"\n")
    record = AuthorityRecord(
        authority=authority,
        name=name,
        endpoint=config.endpoint,
        tls_fingerprint=fingerprint,
        identity_key=keystore.identity.public_raw,
        prekeys=tuple(keystore.prekeys.published(now)),
        updated=now,
        **_profile(profile or {}),
    )
    signed = sign_record(record, keystore.identity)
    config.record_path.write_bytes(_record_json(signed))
    (home / CONFIG_NAME).write_text(render_config(config), "utf-8")
    return signed


def _profile(profile: dict[str, Any]) -> dict[str, Any]:
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown directory fields: {', '.join(sorted(unknown))}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in profile.items()}


def refresh_record(config: NodeConfig, keystore: KeyStore, now: int) -> SignedRecord:
    """Re-sign the node's record with the prekeys it holds now (after a rotation)."""
    previous = SignedRecord.from_json(json.loads(config.record_path.read_bytes()))
    record = replace(previous.record, identity_key=keystore.identity.public_raw,
                     prekeys=tuple(keystore.prekeys.published(now)), updated=now)
    signed = sign_record(record, keystore.identity)
    tmp = config.record_path.with_suffix(".tmp")
    tmp.write_bytes(_record_json(signed))
    os.replace(tmp, config.record_path)
    return signed
