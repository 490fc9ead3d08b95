"""One TOML file per node. Secrets never live in it: they come from environment variables.

Example (what ``rogatory init`` writes)::

    [authority]
    id = "FR:MJ"

    [peer]                       # the endpoint other authorities call
    host = "127.0.0.1"
    port = 8443
    public_url = "https://127.0.0.1:8443"
    tls = true                   # plain HTTP only for debugging; the node warns
    max_body = 16777216
    body_timeout = 60.0          # a body that takes longer is refused (slow clients)
    header_timeout = 30.0        # a connection that has not sent a whole request head by
                                 # then, or stays idle that long between requests, is closed

    [local]                      # the API for this authority's own users and tools
    host = "127.0.0.1"
    port = 8080

    [web]                        # the caseworkers' web interface, on the local side only
    enabled = true
    host = "127.0.0.1"
    port = 8090
    max_failures = 5             # wrong passwords in a row that lock an account
    lockout = 900                # for this many seconds
    session_idle = 1800          # a session unused this long ends

    [directory]
    file = "directory.json"
    secretariat = ["rogatory-secretariat-…", "rogatory-secretariat-…", "rogatory-secretariat-…"]
    threshold = 2

    [delivery]
    max_skew = 300
    envelope_lifetime = 604800
    retry_base = 0.5
    retry_max = 300.0

    [audit]
    witness_interval = 60.0      # seconds between rounds of fetching and cosigning peers' logs
    receipt_check_interval = 0.5 # at most one check of a peer's log per this many seconds
                                 # while its receipts keep coming (the newest is always checked)

    [cases]
    retrieval_receipts = true    # send the sender signed evidence of each message's first opening

    [secrets]
    passphrase_env = "ROGATORY_PASSPHRASE"
    api_token_env = "ROGATORY_API_TOKEN"

Relative paths are relative to the folder holding the config file (the node's home).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keys.identity import decode_public
from protocol.errors import ConfigError, ConfigMissing, RogatoryError

__all__ = ["NodeConfig", "load_config", "read_api_token", "read_receiver_token", "render_config"]

CONFIG_NAME = "rogatory.toml"


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    authority: str
    peer_host: str = "127.0.0.1"
    peer_port: int = 8443
    public_url: str = ""
    tls: bool = True
    max_body: int = 16 * 1024 * 1024
    body_timeout: float = 60.0  # seconds for a whole request body (not attachment uploads)
    header_timeout: float = 30.0  # seconds for a request head; also the idle keep-alive
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    web_enabled: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = 8090
    web_max_failures: int = 5
    web_lockout: int = 900
    web_session_idle: int = 1800
    directory_file: str = "directory.json"
    secretariat: tuple[str, ...] = field(default_factory=tuple)
    threshold: int = 1
    max_skew: int = 300
    envelope_lifetime: int = 7 * 24 * 3600
    retry_base: float = 0.5
    retry_max: float = 300.0
    witness_interval: float = 60.0
    receipt_check_interval: float = 0.5
    retrieval_receipts: bool = True
    passphrase_env: str = "ROGATORY_PASSPHRASE"
    api_token_env: str = "ROGATORY_API_TOKEN"

    @property
    def keystore_path(self) -> Path:
        return self.home / "keystore.json"

    @property
    def database_path(self) -> Path:
        return self.home / "node.db"

    @property
    def cert_path(self) -> Path:
        return self.home / "tls-cert.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.home / "tls-key.pem"

    @property
    def api_token_path(self) -> Path:
        return self.home / "api-token"

    @property
    def receiver_token_path(self) -> Path:
        """The designated receiver's token: reads spontaneous information before acceptance."""
        return self.home / "receiver-token"

    @property
    def record_path(self) -> Path:
        return self.home / "authority-record.json"

    @property
    def directory_path(self) -> Path:
        return self.home / self.directory_file

    @property
    def secretariat_keys(self) -> list[bytes]:
        return [decode_public("secretariat", text) for text in self.secretariat]

    @property
    def endpoint(self) -> str:
        if self.public_url:
            return self.public_url
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.peer_host}:{self.peer_port}"


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _typed(section: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = section.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be of type {kind.__name__}")
    return value


def load_config(home: Path) -> NodeConfig:
    """Read ``rogatory.toml`` from a node's home folder, checking every value's type."""
    path = home / CONFIG_NAME
    if not path.exists():
        raise ConfigMissing(str(path))
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    authority = _section(data, "authority")
    peer = _section(data, "peer")
    local = _section(data, "local")
    directory = _section(data, "directory")
    delivery = _section(data, "delivery")
    secrets = _section(data, "secrets")
    audit = _section(data, "audit")
    cases = _section(data, "cases")
    web = _section(data, "web")
    defaults = NodeConfig(home=home, authority="")
    secretariat = directory.get("secretariat", [])
    if not isinstance(secretariat, list) or not all(isinstance(s, str) for s in secretariat):
        raise ConfigError("directory.secretariat must be a list of key strings")
    config = NodeConfig(
        home=home.resolve(),
        authority=_typed(authority, "id", str, ""),
        peer_host=_typed(peer, "host", str, defaults.peer_host),
        peer_port=_typed(peer, "port", int, defaults.peer_port),
        public_url=_typed(peer, "public_url", str, ""),
        tls=_typed(peer, "tls", bool, True),
        max_body=_typed(peer, "max_body", int, defaults.max_body),
        body_timeout=_typed(peer, "body_timeout", float, defaults.body_timeout),
        header_timeout=_typed(peer, "header_timeout", float, defaults.header_timeout),
        api_host=_typed(local, "host", str, defaults.api_host),
        api_port=_typed(local, "port", int, defaults.api_port),
        web_enabled=_typed(web, "enabled", bool, defaults.web_enabled),
        web_host=_typed(web, "host", str, defaults.web_host),
        web_port=_typed(web, "port", int, defaults.web_port),
        web_max_failures=_typed(web, "max_failures", int, defaults.web_max_failures),
        web_lockout=_typed(web, "lockout", int, defaults.web_lockout),
        web_session_idle=_typed(web, "session_idle", int, defaults.web_session_idle),
        directory_file=_typed(directory, "file", str, defaults.directory_file),
        secretariat=tuple(secretariat),
        threshold=_typed(directory, "threshold", int, 1),
        max_skew=_typed(delivery, "max_skew", int, defaults.max_skew),
        envelope_lifetime=_typed(delivery, "envelope_lifetime", int,
                                 defaults.envelope_lifetime),
        retry_base=_typed(delivery, "retry_base", float, defaults.retry_base),
        retry_max=_typed(delivery, "retry_max", float, defaults.retry_max),
        witness_interval=_typed(audit, "witness_interval", float,
                                defaults.witness_interval),
        receipt_check_interval=_typed(audit, "receipt_check_interval", float,
                                      defaults.receipt_check_interval),
        retrieval_receipts=_typed(cases, "retrieval_receipts", bool, True),
        passphrase_env=_typed(secrets, "passphrase_env", str, defaults.passphrase_env),
        api_token_env=_typed(secrets, "api_token_env", str, defaults.api_token_env),
    )
    if not config.authority:
        raise ConfigError("[authority] id is required")
    if config.web_enabled and config.web_port in (config.peer_port, config.api_port):
        # Compared by port alone: "localhost", "127.0.0.1" and "0.0.0.0" can all be the same
        # socket, and the peer endpoint must never serve the interface.
        raise ConfigError("[web] needs its own port: never the peer endpoint's or the API's")
    if min(config.web_max_failures, config.web_lockout, config.web_session_idle) < 1:
        raise ConfigError("[web] max_failures, lockout and session_idle must be positive")
    if min(config.header_timeout, config.body_timeout) <= 0:
        raise ConfigError("[peer] header_timeout and body_timeout must be positive")
    if config.receipt_check_interval < 0:
        raise ConfigError("[audit] receipt_check_interval cannot be negative")
    if config.threshold < 1 or config.threshold > max(1, len(config.secretariat)):
        raise ConfigError("directory.threshold must be between 1 and the number of keys")
    try:
        config.secretariat_keys  # noqa: B018 - validates every pinned key string
    except RogatoryError as exc:
        raise ConfigError(f"directory.secretariat: {exc.message}") from exc
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def render_config(config: NodeConfig) -> str:
    """The TOML text for a config; ``load_config`` of it gives the same values back."""
    sections: dict[str, dict[str, Any]] = {
        "authority": {"id": config.authority},
        "peer": {
            "host": config.peer_host,
            "port": config.peer_port,
            "public_url": config.public_url,
            "tls": config.tls,
            "max_body": config.max_body,
            "body_timeout": config.body_timeout,
            "header_timeout": config.header_timeout,
        },
        "local": {"host": config.api_host, "port": config.api_port},
        "web": {"enabled": config.web_enabled, "host": config.web_host, "port": config.web_port,
                "max_failures": config.web_max_failures, "lockout": config.web_lockout,
                "session_idle": config.web_session_idle},
        "directory": {
            "file": config.directory_file,
            "secretariat": list(config.secretariat),
            "threshold": config.threshold,
        },
        "delivery": {
            "max_skew": config.max_skew,
            "envelope_lifetime": config.envelope_lifetime,
            "retry_base": config.retry_base,
            "retry_max": config.retry_max,
        },
        "audit": {"witness_interval": config.witness_interval,
                  "receipt_check_interval": config.receipt_check_interval},
        "cases": {"retrieval_receipts": config.retrieval_receipts},
        "secrets": {
            "passphrase_env": config.passphrase_env,
            "api_token_env": config.api_token_env,
        },
    }
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def read_api_token(config: NodeConfig) -> str:
    """The local API token: the environment variable named in the config, else the token file."""
    token = os.environ.get(config.api_token_env, "")
    if token:
        return token
    try:
        return config.api_token_path.read_text("ascii").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"no API token: set {config.api_token_env} or create {config.api_token_path}"
        ) from None


def read_receiver_token(config: NodeConfig) -> str | None:
    """The designated receiver's token, or ``None`` if this node has none."""
    token = os.environ.get("ROGATORY_RECEIVER_TOKEN", "")
    if token:
        return token
    try:
        return config.receiver_token_path.read_text("ascii").strip() or None
    except FileNotFoundError:
        return None
