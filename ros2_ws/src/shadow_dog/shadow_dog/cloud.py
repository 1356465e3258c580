"""A remote model over HTTP, as the Commander's cloud hook.

`http_cloud_hook(url)` POSTs `{"text": ...}` as JSON and reads back `{"program": "..."}` (an action program, which
then goes through the same safety layer as the edge model's) or `{"answer": "..."}` (a spoken/text answer: nothing
moves). Anything else, a timeout or an HTTP error raises, and the Commander turns that into a refusal.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable


class CloudError(RuntimeError):
    pass


def http_cloud_hook(url: str, timeout_s: float = 2.0) -> Callable[[str], str | None]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"cloud_url must be an http(s) URL, got {url!r}")

    def ask(text: str) -> str | None:
        body = json.dumps({"text": text}).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (configured URL)
            raw = response.read(1 << 16)
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise CloudError(f"the remote model's answer is not JSON: {raw[:80]!r}") from exc
        if not isinstance(answer, dict):
            raise CloudError("the remote model's answer is not a JSON object")
        for key in ("program", "answer"):
            value = answer.get(key)
            if isinstance(value, str):
                return value
        return None

    return ask
