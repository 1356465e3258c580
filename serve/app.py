"""The Starlette application of `shadow-serve`: endpoints, limits and error answers.

- `POST /v1/command` (bearer token): `{"text": "..."}` -> the JSON object `shadow-run --json` prints for that command
  (`CommandResult.to_json`), plus `"answer"` (text or null) for a command routed to `remote` when an answer model
  is configured. Every decision, refusals included, is 200; the request itself being wrong is 4xx with
  `{"error": reason}`: 401 (no or wrong token), 411/413 (body length missing or over the limit), 415 (not JSON),
  400 (bad JSON), 422 (not an object, no string `text`, text too long); 503 when `max_concurrent` requests are
  already being handled, 504 when one takes longer than `request_timeout_s`; 500 (never a traceback) if the server
  itself fails.
- `GET /healthz`: `{"status": "ok", ...}` once the model is loaded (no token: load balancers probe it).
- `GET /metrics`: Prometheus text format (no token).

The Commander runs in worker threads (`Commander.run` blocks on its decode), so the event loop only parses, checks
and answers; with a `BatchingCommander`, concurrent requests share decode steps.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import bearer_ok
from .metrics import ServeMetrics

log = logging.getLogger(__name__)

COMMAND = "/v1/command"


@dataclass(frozen=True)
class ServeLimits:
    """What one request may be and take."""

    max_body_bytes: int = 16 * 1024
    max_text_chars: int = 1000
    max_concurrent: int = 64
    request_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_text_chars", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.request_timeout_s > 0 and math.isfinite(self.request_timeout_s)):
            raise ValueError(f"request_timeout_s must be a positive number, got {self.request_timeout_s}")


class RequestRefused(Exception):
    """A request answered with a 4xx/5xx status and a reason."""

    def __init__(self, status: int, reason: str, kind: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.kind, self.headers = status, reason, kind, headers


def create_app(
    commander: Any,
    token: str,
    limits: ServeLimits | None = None,
    answer: Callable[[str], str | None] | None = None,
    metrics: ServeMetrics | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """The application around a loaded `Commander` (or `BatchingCommander`).

    `answer(text) -> str | None`: optional text answers for commands the model routes to `remote` (the reply then
    carries `"answer"`); `on_shutdown`: called when the server stops (e.g. `commander.close`).
    """
    if not token:
        raise ValueError("a bearer token is required")
    limits = limits or ServeLimits()
    metrics = metrics or ServeMetrics()
    limiter = anyio.CapacityLimiter(limits.max_concurrent)
    state = {"in_flight": 0}

    async def command(request: Request) -> Response:
        start = time.perf_counter()
        try:
            if not bearer_ok(request.headers.get("authorization"), token):
                raise RequestRefused(
                    401,
                    "missing or wrong bearer token",
                    "auth",
                    {"WWW-Authenticate": 'Bearer realm="shadow"'},
                )
            text, spoken = _command_text(await _read_json(request, limits), limits)
            if state["in_flight"] >= limits.max_concurrent:
                raise RequestRefused(
                    503,
                    f"{limits.max_concurrent} requests are already being handled; retry later",
                    "overloaded",
                    {"Retry-After": "1"},
                )
            state["in_flight"] += 1
            metrics.in_flight.inc()
            try:
                body = await _run_command(commander, metrics, answer, text, spoken, limits, limiter)
            finally:
                state["in_flight"] -= 1
                metrics.in_flight.dec()
        except RequestRefused as refused:
            metrics.errors.labels(refused.kind).inc()
            metrics.requests.labels(COMMAND, str(refused.status)).inc()
            return JSONResponse({"error": refused.reason}, refused.status, headers=refused.headers)
        if body.get("error") is not None:
            metrics.errors.labels("model").inc()
        metrics.routes.labels(str(body.get("route"))).inc()
        metrics.requests.labels(COMMAND, "200").inc()
        metrics.latency.observe(time.perf_counter() - start)
        return JSONResponse(body)

    async def healthz(request: Request) -> Response:
        metrics.requests.labels("/healthz", "200").inc()
        info = commander.info()
        return JSONResponse(
            {
                "status": "ok",
                **{k: info.get(k) for k in ("mode", "precision", "max_batch")},
                "answers": bool(answer),
            }
        )

    async def prometheus(request: Request) -> Response:
        metrics.requests.labels("/metrics", "200").inc()
        return Response(metrics.render(), media_type=metrics.content_type)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal server error"
        metrics.requests.labels(_endpoint(request), str(status)).inc()
        metrics.errors.labels("http" if status < 500 else "internal").inc()
        if status >= 500:
            log.error("request to %s failed: %s", request.url.path, exc, exc_info=exc)
        return JSONResponse({"error": detail}, status)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = Starlette(
        routes=[
            Route(COMMAND, command, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: http_error},
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.limits = limits
    return app


def _endpoint(request: Request) -> str:
    path = request.url.path
    return path if path in (COMMAND, "/healthz", "/metrics") else "other"


async def _read_json(request: Request, limits: ServeLimits) -> Any:
    """The request body as JSON, read no further than `max_body_bytes`."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestRefused(415, "the body must be JSON (Content-Type: application/json)", "bad_request")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise RequestRefused(400, "bad Content-Length", "bad_request")
        if int(length) > limits.max_body_bytes:
            raise RequestRefused(413, f"body over {limits.max_body_bytes} bytes", "too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limits.max_body_bytes:
                raise RequestRefused(413, f"body over {limits.max_body_bytes} bytes", "too_large")
    except ClientDisconnect:
        raise RequestRefused(400, "the client went away mid-request", "bad_request") from None
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestRefused(400, "the body is not UTF-8", "bad_request") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise RequestRefused(400, f"the body is not JSON ({reason})", "bad_request") from None


def _command_text(payload: Any, limits: ServeLimits) -> tuple[str, bool]:
    """The command's text, and whether the robot heard it (`"spoken": true`: a recogniser's transcript, gated by
    the export's speech gate)."""
    if not isinstance(payload, dict):
        raise RequestRefused(422, 'expected a JSON object {"text": "..."}', "bad_request")
    text = payload.get("text")
    if not isinstance(text, str):
        problem = 'no "text" field' if "text" not in payload else '"text" must be a string'
        raise RequestRefused(422, problem, "bad_request")
    if len(text) > limits.max_text_chars:
        raise RequestRefused(
            422, f"text is {len(text)} characters; at most {limits.max_text_chars}", "bad_request"
        )
    spoken = payload.get("spoken", False)
    if not isinstance(spoken, bool):
        raise RequestRefused(422, '"spoken" must be true or false', "bad_request")
    return text, spoken


async def _run_command(
    commander: Any,
    metrics: ServeMetrics,
    answer: Callable[[str], str | None] | None,
    text: str,
    spoken: bool,
    limits: ServeLimits,
    limiter: anyio.CapacityLimiter,
) -> dict[str, Any]:
    """The command's JSON (and the text answer when it is routed remote), within the time limit."""

    def work() -> dict[str, Any]:
        result = commander.run(text, spoken=spoken)
        body = result.to_json()
        if answer is not None and result.route == "remote" and result.error is None:
            try:
                body["answer"] = answer(result.model_text or result.text)
            except Exception:  # no answer is a refusal on the robot: nothing moves
                log.exception("the answer model failed")
                metrics.errors.labels("answer").inc()
        return body

    try:
        with anyio.fail_after(limits.request_timeout_s):
            # Abandoned on timeout: the decode it waits for is bounded by max_new_tokens and ends by itself.
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=limiter)
    except TimeoutError:
        raise RequestRefused(
            504, f"no answer within {limits.request_timeout_s:g} s", "timeout", {"Retry-After": "1"}
        ) from None
    except Exception as exc:  # Commander.run never raises: a bug
        log.exception("command failed")
        raise RequestRefused(500, f"the server failed ({type(exc).__name__})", "internal") from None
