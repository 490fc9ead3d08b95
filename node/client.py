"""A small synchronous client of a running node's local API, for the CLI and scripts.

It rebuilds the node's typed error from the code in the answer, so the CLI prints the same
one-line error whether a failure happened in the node or in the command itself.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from node.config import NodeConfig, read_api_token, read_receiver_token
from protocol.errors import ConfigError, TransportUnreachable, error_for_code

__all__ = ["LocalClient"]


class LocalClient:
    def __init__(self, config: NodeConfig, timeout: float = 30.0, *,
                 receiver: bool = False) -> None:
        """``receiver``: call as the designated receiver of spontaneous information."""
        host = config.api_host if config.api_host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.base = f"http://{host}:{config.api_port}/api/v1"
        token = read_receiver_token(config) if receiver else read_api_token(config)
        if token is None:
            raise ConfigError(f"no designated receiver token in {config.receiver_token_path}")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json", raw: bool = False) -> Any:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
                return answer if raw else json.loads(answer)
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                raise TransportUnreachable(f"{self.base}: HTTP {exc.code}") from None
            raise error_for_code(error["code"], error.get("detail", "")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransportUnreachable(
                f"no node answering at {self.base} ({exc}); is `rogatory serve` running?"
            ) from None

    def download(self, path: str, sink: Callable[[bytes], None], piece: int = 1 << 20) -> None:
        """Stream a GET's body into ``sink``, a piece at a time (attachments can be huge)."""
        request = urllib.request.Request(self.base + path, method="GET")
        request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                while chunk := response.read(piece):
                    sink(chunk)
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                raise TransportUnreachable(f"{self.base}: HTTP {exc.code}") from None
            raise error_for_code(error["code"], error.get("detail", "")) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise TransportUnreachable(f"{self.base}{path}: {exc}") from None

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/messages", json.dumps(message).encode())
        return result

    def messages(self, direction: str = "in", limit: int = 100) -> list[dict[str, Any]]:
        result = self.call("GET", f"/messages?direction={direction}&limit={limit}")
        return list(result["messages"])

    def message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/messages/{message_id}")
        return result

    def cases(self, overdue: bool = False) -> list[dict[str, Any]]:
        return list(self.call("GET", "/cases" + ("?overdue=1" if overdue else ""))["cases"])

    def reply(self, case_ref: str, kind: str, fields: dict[str, Any],
              counterpart: str = "", attachments: list[str] | None = None) -> dict[str, Any]:
        body = json.dumps({"kind": kind, "fields": fields, "with": counterpart,
                           "attachments": attachments or []}).encode()
        result: dict[str, Any] = self.call(
            "POST", f"/cases/{urllib.parse.quote(case_ref, safe='')}/messages", body)
        return result

    def spontaneous(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/spontaneous")["spontaneous"])

    def answer_conditions(self, message_id: str, accepted: bool,
                          reason: str = "") -> dict[str, Any]:
        body = json.dumps({"accepted": accepted, "reason": reason}).encode()
        result: dict[str, Any] = self.call("POST", f"/spontaneous/{message_id}/answer", body)
        return result

    def statistics_cases(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/statistics/cases")["cases"])

    def case(self, case_ref: str, counterpart: str = "") -> dict[str, Any]:
        query = f"?with={urllib.parse.quote(counterpart)}" if counterpart else ""
        result: dict[str, Any] = self.call(
            "GET", f"/cases/{urllib.parse.quote(case_ref, safe='')}{query}")
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/status")
        return result

    def adopt_directory(self, file: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/directory", file, "application/json")
        return result

    def alarms(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/audit/alarms")["alarms"])

    def audit_bundle(self) -> bytes:
        return bytes(self.call("GET", "/audit/bundle", raw=True))
