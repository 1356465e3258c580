#!/usr/bin/env python3
"""Load test for shadow-serve on loopback: N robots (concurrent clients) against batched and one-at-a-time servers.

Starts two `shadow-serve` processes over the same export (`--max-batch 1`, one command per decode, and
`--max-batch N`, shared decode steps), both on 127.0.0.1 with a fresh token, and plays robots against them: each
robot sends commands from the robot-dog test split one after another and waits for each answer (keep-alive, like
the node's hook). For every concurrency level the two servers are measured in alternating rounds (the order turns
each round), so load from other work on the machine hits both alike; figures are medians over rounds.

Then `--soak-seconds S` runs the batched server under the highest concurrency for S seconds and samples its RSS
every second: the report says whether memory grew (median RSS of the last fifth vs the first fifth after a warm-up
fifth, beyond `--max-rss-growth-mib`) and counts every error. Everything is bounded: each phase has a fixed time,
the servers are stopped at the end (also on errors or Ctrl-C), and only loopback is used.

    python scripts/load_serve.py build/robot-dog --clients 1 4 16 --seconds 10 --rounds 3 --soak-seconds 600 \
        --out build/load_serve.json

Prints the figures and writes a JSON report. Exit status 0 when there were no errors and no memory growth (the
throughput and latency targets are reported, not enforced), 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import ssl
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from shadow_edge.serve.launch import serve_process
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
TEST_SPLIT = REPO / "tasks" / "robot_dog" / "data" / "test.jsonl"
log = logging.getLogger("load_serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="export directory (shadow-export output)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one measured phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per concurrency level")
    parser.add_argument("--max-batch", type=int, default=16, help="--max-batch of the batched server")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of each server")
    parser.add_argument("--soak-seconds", type=float, default=0.0, help="soak the batched server this long")
    parser.add_argument("--max-rss-growth-mib", type=float, default=20.0, help="RSS growth counted as a leak")
    parser.add_argument("--texts", type=int, default=200, help="distinct commands from the test split")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "load_serve.json", help="JSON report")
    return parser


def load_texts(limit: int) -> list[str]:
    texts = []
    with TEST_SPLIT.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                texts.append(json.loads(line)["text"])
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


@contextmanager
def server(model_dir: Path, token_path: Path, max_batch: int, threads: int | None, max_concurrent: int):
    """A shadow-serve process on a free loopback port; yields (url, psutil.Process)."""
    args = ["--max-batch", str(max_batch), "--max-concurrent", str(max_concurrent), "--request-timeout", "30"]
    if threads:
        args += ["--threads", str(threads)]
    with serve_process(model_dir, token_path, args) as running:
        yield running.url, psutil.Process(running.process.pid)


def play(url: str, token: str, texts: list[str], clients: int, seconds: float, rss_of=None) -> dict[str, Any]:
    """`clients` robots sending commands for `seconds`; latencies of the answers that arrived in the window."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    rss: list[tuple[float, float]] = []
    headers = {"Authorization": f"Bearer {token}"}
    # Clients (and their connection pools) are made before the clock starts.
    tls = ssl.create_default_context()  # one context for all (httpx makes one per client otherwise: slow)
    sessions = [httpx.Client(base_url=url, headers=headers, timeout=30, verify=tls) for _ in range(clients)]
    ready = threading.Barrier(clients + 1)
    window = {"stop_at": 0.0}

    def robot(i: int) -> None:
        client = sessions[i]
        k = i * 7919
        ready.wait()
        while time.perf_counter() < window["stop_at"]:
            text = texts[k % len(texts)]
            k += 1
            t0 = time.perf_counter()
            try:
                reply = client.post("/v1/command", json={"text": text})
            except httpx.HTTPError as exc:
                errors[i].append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            body = (
                reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
            )
            if reply.status_code != 200 or body.get("error") or body.get("text") != text:
                errors[i].append(f"HTTP {reply.status_code}: {str(body)[:200]}")
                continue
            latencies[i].append(elapsed)

    threads = [threading.Thread(target=robot, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    window["stop_at"] = start + seconds
    ready.wait()
    if rss_of is not None:
        while any(t.is_alive() for t in threads):
            rss.append((time.perf_counter() - start, rss_of() / 2**20))
            time.sleep(1.0)
    for t in threads:
        t.join(seconds + 60)
    for client in sessions:
        client.close()
    wall = time.perf_counter() - start
    flat = [x for robot_latencies in latencies for x in robot_latencies]
    all_errors = [e for robot_errors in errors for e in robot_errors]
    return {
        "clients": clients,
        "seconds": round(wall, 3),
        "answers": len(flat),
        "errors": len(all_errors),
        "error_examples": all_errors[:5],
        "throughput_per_s": len(flat) / wall,
        "p50_ms": float(np.percentile(flat, 50) * 1000) if flat else None,
        "p99_ms": float(np.percentile(flat, 99) * 1000) if flat else None,
        "rss_mib": rss,
    }


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def median_of(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r[key] is not None]
    return float(statistics.median(values)) if values else None


def sweep(servers: dict[str, tuple[str, Any]], token: str, texts: list[str], args) -> list[dict[str, Any]]:
    levels = []
    names = list(servers)
    for clients in args.clients:
        rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for r in tqdm(range(args.rounds), desc=f"{clients} robot(s)", unit="round"):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                url, process = servers[name]
                play(url, token, texts[:8], 1, 1.0)  # warm the connection path
                cpu_before = sum(process.cpu_times()[:2])
                result = play(url, token, texts, clients, args.seconds)
                cpu = sum(process.cpu_times()[:2]) - cpu_before
                # The server's CPU seconds per answer: on a machine shared with other work, throughput follows
                # the CPU share the server got; its CPU cost per answer does not (onnxruntime's spinning threads
                # count too, so use --threads 1 for a clean figure).
                result["server_cpu_ms_per_answer"] = (
                    cpu * 1000.0 / result["answers"] if result["answers"] else None
                )
                result["rss_mib"] = process.memory_info().rss / 2**20
                rounds[name].append(result)
        level: dict[str, Any] = {"clients": clients}
        for name in names:
            level[name] = {
                "throughput_per_s": median_of(rounds[name], "throughput_per_s"),
                "p50_ms": median_of(rounds[name], "p50_ms"),
                "p99_ms": median_of(rounds[name], "p99_ms"),
                "server_cpu_ms_per_answer": median_of(rounds[name], "server_cpu_ms_per_answer"),
                "errors": sum(r["errors"] for r in rounds[name]),
                "answers": sum(r["answers"] for r in rounds[name]),
                "rss_mib": max(r["rss_mib"] for r in rounds[name]),
                "error_examples": [e for r in rounds[name] for e in r["error_examples"]][:5],
                "rounds": [{k: v for k, v in r.items() if k != "error_examples"} for r in rounds[name]],
            }
        batched, single = level["batched"]["throughput_per_s"], level["one_at_a_time"]["throughput_per_s"]
        level["throughput_ratio"] = batched / single if batched and single else None
        cpu_b, cpu_o = (
            level["batched"]["server_cpu_ms_per_answer"],
            level["one_at_a_time"]["server_cpu_ms_per_answer"],
        )
        level["cpu_per_answer_ratio"] = cpu_o / cpu_b if cpu_b and cpu_o else None
        levels.append(level)
        b, o = level["batched"], level["one_at_a_time"]
        print(
            f"{clients:>3} robots: batched {_f(batched)}/s p50 {_f(b['p50_ms'])} ms p99 {_f(b['p99_ms'])} ms | "
            f"one at a time {_f(single)}/s p50 {_f(o['p50_ms'])} ms p99 {_f(o['p99_ms'])} ms | "
            f"ratio {_f(level['throughput_ratio'], 2)}x | server CPU per answer {_f(b['server_cpu_ms_per_answer'])} "
            f"vs {_f(o['server_cpu_ms_per_answer'])} ms ({_f(level['cpu_per_answer_ratio'], 2)}x) | "
            f"errors {b['errors']}+{o['errors']}",
            flush=True,
        )
        for example in b["error_examples"] + o["error_examples"]:
            print(f"    error: {example}", flush=True)
    return levels


def soak(url: str, process: Any, token: str, texts: list[str], clients: int, args) -> dict[str, Any]:
    print(f"soak: {clients} robots for {args.soak_seconds:.0f} s", flush=True)
    result = play(url, token, texts, clients, args.soak_seconds, rss_of=lambda: process.memory_info().rss)
    samples = [m for _, m in result["rss_mib"]]
    fifth = max(1, len(samples) // 5)
    early = statistics.median(samples[fifth : 2 * fifth]) if len(samples) >= 5 else samples[0]
    late = statistics.median(samples[-fifth:])
    result["rss_early_mib"], result["rss_late_mib"] = early, late
    result["rss_growth_mib"] = late - early
    result["memory_grew"] = late - early > args.max_rss_growth_mib
    print(
        f"soak: {result['answers']} answers, {result['errors']} errors, {_f(result['throughput_per_s'])}/s, "
        f"p50 {_f(result['p50_ms'])} ms p99 {_f(result['p99_ms'])} ms, RSS {early:.1f} -> {late:.1f} MiB",
        flush=True,
    )
    for example in result["error_examples"]:
        print(f"    error: {example}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not (args.model_dir / "manifest.json").is_file():
        print(f"load_serve: {args.model_dir} is not an export directory (no manifest.json)", file=sys.stderr)
        return 2
    if (
        min(args.clients) < 1
        or args.seconds <= 0
        or args.rounds < 1
        or args.max_batch < 1
        or args.soak_seconds < 0
    ):
        print("load_serve: --clients, --seconds, --rounds and --max-batch must be positive", file=sys.stderr)
        return 2
    texts = load_texts(args.texts)
    load_at_start = os.getloadavg()
    manifest = json.loads((args.model_dir / "manifest.json").read_text(encoding="utf-8"))
    token = secrets.token_urlsafe(32)
    concurrent = max(args.clients) + 8
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        token_path = Path(tmp) / "token"
        token_path.write_text(token, encoding="ascii")
        os.chmod(token_path, 0o600)
        servers = {
            "batched": stack.enter_context(
                server(args.model_dir, token_path, args.max_batch, args.threads, concurrent)
            ),
            "one_at_a_time": stack.enter_context(
                server(args.model_dir, token_path, 1, args.threads, concurrent)
            ),
        }
        levels = sweep(servers, token, texts, args)
        soaked = None
        if args.soak_seconds > 0:
            url, process = servers["batched"]
            soaked = soak(url, process, token, texts, max(args.clients), args)
        metrics = httpx.get(f"{servers['batched'][0]}/metrics", timeout=10).text
    batch_rows = [line for line in metrics.splitlines() if line.startswith("shadow_serve_batch_rows_")]
    top = levels[-1]
    report = {
        "model_dir": str(args.model_dir),
        "mode": manifest.get("mode"),
        "precision": manifest.get("precision"),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "levels": levels,
        "soak": soaked,
        "batch_rows_metric": batch_rows,
        "targets": {
            "clients": top["clients"],
            "throughput_ratio": top["throughput_ratio"],
            "ratio_at_least_3x": bool(top["throughput_ratio"] and top["throughput_ratio"] >= 3.0),
            "p99_ms": top["batched"]["p99_ms"],
            "p99_at_most_1s": bool(top["batched"]["p99_ms"] is not None and top["batched"]["p99_ms"] <= 1000),
            "cpu_per_answer_ratio": top["cpu_per_answer_ratio"],
        },
    }
    errors = sum(level[n]["errors"] for level in levels for n in ("batched", "one_at_a_time"))
    errors += soaked["errors"] if soaked else 0
    report["errors"] = errors
    report["memory_grew"] = bool(soaked and soaked["memory_grew"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report: {args.out} (errors {errors}, memory grew: {report['memory_grew']})")
    return 0 if errors == 0 and not report["memory_grew"] else 1


if __name__ == "__main__":
    sys.exit(main())
