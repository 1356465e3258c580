"""Bearer-token authentication: the token comes from a file, and requests are compared in constant time."""

from __future__ import annotations

import hmac
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
MAX_TOKEN_BYTES = 4096


class TokenError(ValueError):
    """The token file cannot be used (missing, unreadable, empty, too short, not one line)."""


def load_token(path: str | Path) -> str:
    """The token in `path` (surrounding whitespace stripped); `TokenError` saying what is wrong with the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()[: MAX_TOKEN_BYTES + 1]
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the token file ({exc.strerror or exc})") from None
    if len(raw) > MAX_TOKEN_BYTES:
        raise TokenError(f"{path}: a token file holds one token of at most {MAX_TOKEN_BYTES} bytes")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenError(f"{path}: the token must be printable ASCII") from None
    if not token:
        raise TokenError(f"{path}: the token file is empty")
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenError(
            f"{path}: the token must be one word of at least {MIN_TOKEN_CHARS} printable characters "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    try:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("%s: the token file is readable by other users (chmod 600 it)", path)
    except OSError:
        pass
    return token


def bearer_ok(header: str | None, token: str) -> bool:
    """True when an `Authorization` header value carries exactly `token` as a bearer token (constant-time)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode("ascii"))
