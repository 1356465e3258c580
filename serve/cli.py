"""`shadow-serve MODEL_DIR`: the exported model as an HTTP service (uvicorn + Starlette), for the robots' remote route.

Exit status (the project's CLI convention): 0 after a clean shutdown (SIGINT/SIGTERM), 1 when it ran but failed (the
address cannot be bound, the server stopped with an error), 2 for bad arguments or inputs (options, a token file
that cannot be used, a MODEL_DIR that cannot run). Nothing heavy is imported before the arguments are parsed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence

PROG = "shadow-serve"
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
TOKEN_ENV = "SHADOW_SERVE_TOKEN_FILE"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            'Serve a model exported by shadow-export over HTTP: POST /v1/command {"text"} returns what '
            "shadow-run --json prints (same Commander, manifest checks and safety layer); GET /healthz; GET "
            "/metrics (Prometheus). Concurrent requests share decode steps. A bearer token is required."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="directory written by shadow-export")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)"
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080; 0 picks a free one)")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        default=os.environ.get(TOKEN_ENV),
        help=f"file holding the bearer token clients must send (default: ${TOKEN_ENV}); required",
    )
    parser.add_argument(
        "--max-batch", type=int, default=8, metavar="N", help="most commands decoded together (default: 8)"
    )
    parser.add_argument(
        "--provider", default="auto", metavar="NAME", help="onnxruntime provider(s) (default: auto)"
    )
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="intra-op threads")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, metavar="N", help="longest program in tokens"
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        metavar="P",
        help="below it: the remote route (default 0.5)",
    )
    parser.add_argument("--max-body-bytes", type=int, default=16384, metavar="N", help="largest request body")
    parser.add_argument("--max-text-chars", type=int, default=1000, metavar="N", help="longest command text")
    parser.add_argument(
        "--max-concurrent", type=int, default=64, metavar="N", help="requests handled at once; more get 503"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=10.0, metavar="S", help="longest time per request; then 504"
    )
    parser.add_argument(
        "--chat-model",
        metavar="DIR",
        default=None,
        help="a chat export (shadow-export --mode chat): commands routed to remote get a text answer "
        '("answer" in the reply)',
    )
    parser.add_argument(
        "--answer-max-tokens",
        type=int,
        default=64,
        metavar="N",
        help="longest answer in tokens (default: 64)",
    )
    parser.add_argument(
        "--answer-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="longest time per answer (default: 5 s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests and what is loaded")
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _check_args(args: argparse.Namespace) -> str | None:
    if not args.token_file:
        return f"a bearer token is required: --token-file FILE (or ${TOKEN_ENV})"
    if not 0 <= args.port <= 65535:
        return f"--port must be in 0..65535, got {args.port}"
    for name in (
        "max_batch",
        "threads",
        "max_new_tokens",
        "max_body_bytes",
        "max_text_chars",
        "max_concurrent",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {value}"
    if args.answer_max_tokens < 1 or not 0 < args.answer_timeout < args.request_timeout:
        return "--answer-max-tokens must be >= 1 and --answer-timeout in (0, --request-timeout)"
    if not args.request_timeout > 0:
        return f"--request-timeout must be > 0, got {args.request_timeout}"
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        return f"--min-confidence must be in [0, 1], got {args.min_confidence}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from shadow_edge.runtime.logs import setup_logging

    setup_logging(args.verbose, prog=PROG, quiet=True, timestamps=True)
    problem = _check_args(args)
    if problem:
        _error(problem)
        return EXIT_USAGE

    from .auth import TokenError, load_token

    try:
        token = load_token(args.token_file)
    except TokenError as exc:
        _error(str(exc))
        return EXIT_USAGE
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.create_server((args.host, args.port), family=family)
    except OSError as exc:
        _error(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})")
        return EXIT_ERROR

    from shadow_edge.runtime.batched import BatchingCommander
    from shadow_edge.runtime.commander import ModelLoadError
    from shadow_edge.runtime.generate import DEFAULT_MAX_NEW_TOKENS

    from .app import ServeLimits, create_app
    from .metrics import ServeMetrics

    metrics = ServeMetrics()
    try:
        commander = BatchingCommander(
            args.model_dir,
            providers=args.provider,
            threads=args.threads,
            max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            min_confidence=args.min_confidence,  # None: the export's calibrated gate (routing.json)
            max_chars=args.max_text_chars,
            max_batch=args.max_batch,
            on_step=metrics.batch_rows.observe,
        )
    except ModelLoadError as exc:
        sock.close()
        _error(f"cannot run the model: {exc}")
        return EXIT_USAGE
    answerer = None
    if args.chat_model:
        from .answers import ChatAnswerer

        try:
            answerer = ChatAnswerer(
                args.chat_model,
                max_new_tokens=args.answer_max_tokens,
                timeout_s=args.answer_timeout,
                providers=args.provider,
                threads=args.threads,
            )
        except ModelLoadError as exc:
            commander.close()
            sock.close()
            _error(f"cannot run the chat model: {exc}")
            return EXIT_USAGE
    limits = ServeLimits(args.max_body_bytes, args.max_text_chars, args.max_concurrent, args.request_timeout)
    app = create_app(commander, token, limits, answer=answerer, metrics=metrics, on_shutdown=commander.close)
    return _serve(app, sock, args, limits)


def _serve(app, sock: socket.socket, args: argparse.Namespace, limits) -> int:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="info" if args.verbose else "warning",
        access_log=args.verbose,
        server_header=False,
        timeout_keep_alive=5,
        # Connections beyond this get 503 from uvicorn itself, before the app's own limit.
        limit_concurrency=limits.max_concurrent + 16,
        h11_max_incomplete_event_size=16 * 1024,  # headers
        lifespan="on",
    )
    host, port = sock.getsockname()[:2]
    logging.getLogger(__name__).info("serving %s", args.model_dir)
    print(f"{PROG}: listening on http://{host}:{port}", file=sys.stderr, flush=True)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return EXIT_OK if server.started else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
