"""A remote model over HTTP (e.g. `shadow-serve`), as the Commander's cloud hook.

`http_cloud_hook(url, timeout_s, token)` POSTs `{"text": ...}` as JSON, with `"spoken": true` when the text is a
speech recogniser's transcript (the server then applies its speech gate), and with `Authorization: Bearer <token>`
when a token is given, and reads the answer:

- `shadow-serve`'s reply (the fields of `shadow-run --json`): a `robot` or `reject` program is returned (a robot
  program then goes through the node's own safety layer, like the edge model's); `remote` with an `"answer"`
  returns the answer text (nothing moves); `remote` without one, or a reply carrying `"error"`, is no answer;
- the plain form `{"program": "..."}` or `{"answer": "..."}` of other servers.

Whatever goes wrong -- no answer within `timeout_s` (the whole exchange, not per read), a non-2xx status, a dropped
connection, a reply over 64 KiB, not JSON, or fields of the wrong type -- raises `CloudError`, which the Commander
turns into a refusal: nothing moves and the node goes on with the next command.

`observe`, if given, is called after every exchange with `{"roundtrip_ms", "server_ms", "ok"}`: the time from the
request to the whole reply, and the server's own decision time (`latency_ms` of a shadow-serve reply, else None),
so the network's share is their difference (the system evaluation's latency split). Its failures are ignored.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_REPLY_BYTES = 1 << 16
_CHUNK = 4096


class CloudError(RuntimeError):
    pass


def read_token(path: str | Path) -> str:
    """The bearer token in a file (one line); `CloudError` when it cannot be read or is empty."""
    try:
        token = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CloudError(f"cannot read the cloud token file {path} ({exc})") from None
    if not token or any(c.isspace() for c in token):
        raise CloudError(f"the cloud token file {path} must hold one token on one line")
    return token


def http_cloud_hook(
    url: str,
    timeout_s: float = 2.0,
    token: str | None = None,
    observe: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[str], str | None]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cloud_url must be an http(s) URL, got {url!r}")
    if not timeout_s > 0:
        raise ValueError(f"the cloud timeout must be > 0 seconds, got {timeout_s}")
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def ask(text: str, spoken: bool = False) -> str | None:
        started = time.monotonic()
        exchange: dict[str, Any] = {"roundtrip_ms": None, "server_ms": None, "ok": False}
        try:
            answer = _exchange(text, spoken, started + timeout_s, exchange)
            exchange["ok"] = True
            return answer
        finally:
            exchange["roundtrip_ms"] = (time.monotonic() - started) * 1000.0
            if observe is not None:
                with contextlib.suppress(Exception):  # an observer must never change what the robot does
                    observe(exchange)

    def _exchange(text: str, spoken: bool, deadline: float, exchange: dict[str, Any]) -> str | None:
        body = json.dumps({"text": text, **({"spoken": True} if spoken else {})}).encode("utf-8")
        connection = connection_class(parts.hostname, parts.port, timeout=timeout_s)
        try:
            connection.request("POST", path, body=body, headers=headers)
            _limit(connection, deadline)
            response = connection.getresponse()
            raw = _read_within(connection, response, deadline)
        except TimeoutError:
            raise CloudError(f"the remote model did not answer within {timeout_s:g} s") from None
        except (http.client.HTTPException, OSError) as exc:
            raise CloudError(f"the remote model could not be reached ({type(exc).__name__}: {exc})") from None
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise CloudError(
                f"the remote model answered HTTP {response.status} ({_reason(raw, response.reason)})"
            )
        return _parse(raw, exchange)

    return ask


def _limit(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Let the next socket operation wait no longer than what is left of the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    if connection.sock is not None:
        connection.sock.settimeout(left)


def _read_within(
    connection: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
) -> bytes:
    """The reply body, read in chunks until the deadline (a server trickling bytes cannot hold the node)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        _limit(connection, deadline)
        chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
        if not chunk:
            if response.length not in (None, 0):
                raise CloudError("the remote model's answer was cut off")
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise CloudError(f"the remote model's answer is over {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)


def _reason(raw: bytes, fallback: str) -> str:
    try:
        detail = json.loads(raw).get("error")
    except Exception:  # the error body is only a courtesy
        detail = None
    return str(detail)[:200] if detail else fallback


def _parse(raw: bytes, exchange: dict[str, Any] | None = None) -> str | None:
    try:
        answer = json.loads(raw)
    except ValueError as exc:
        raise CloudError(f"the remote model's answer is not JSON: {raw[:80]!r}") from exc
    if not isinstance(answer, dict):
        raise CloudError("the remote model's answer is not a JSON object")
    server_ms = answer.get("latency_ms")
    if exchange is not None and isinstance(server_ms, int | float) and not isinstance(server_ms, bool):
        exchange["server_ms"] = float(server_ms)
    for key in ("program", "answer", "route", "error"):
        if answer.get(key) is not None and not isinstance(answer[key], str):
            raise CloudError(f"the remote model's answer has a non-text {key!r}")
    if answer.get("error"):
        raise CloudError(f"the remote model failed: {answer['error'][:200]}")
    route = answer.get("route")
    if route is None:  # the plain form
        for key in ("program", "answer"):
            if answer.get(key):
                return answer[key]
        return None
    if route in ("robot", "reject"):
        if not answer.get("program"):
            raise CloudError(f"the remote model's {route} answer has no program")
        return answer["program"]
    if route == "remote":
        return answer.get("answer") or None
    raise CloudError(f"the remote model's answer has an unknown route {route!r}")
