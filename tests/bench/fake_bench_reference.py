"""A stand-in for `shadow_edge.bench.references` in shadow-bench's CLI tests: same arguments and stdin/stdout
protocol (`serve`), canned measurements (500 ms per command, the scripted program). FAKE_REFERENCE_FAIL=load fails
while building, =measure fails on the second round, =crash exits without a word on stdout."""

from __future__ import annotations

import argparse
import json
import os
import sys

PROGRAM = "sit; move x=1"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    for option in ("--adapter", "--base", "--cache-dir"):
        parser.add_argument(option)
    for option in ("--max-new-tokens", "--threads"):
        parser.add_argument(option, type=int)
    args = parser.parse_args()
    fail = os.environ.get("FAKE_REFERENCE_FAIL", "")

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    print(f"shadow-bench [{args.name}]: loading (fake)", file=sys.stderr)
    if fail == "load":
        reply({"error": "injected load failure"})
        return 1
    reply(
        {"ready": True, "details": {"implementation": f"fake {args.name}", "received_adapter": args.adapter}}
    )
    rounds = []
    for line in sys.stdin:
        request = json.loads(line)
        rounds.append(request)
        if fail == "measure" and len(rounds) == 2:
            reply({"error": "injected measurement failure"})
            return 1
        if fail == "crash" and len(rounds) == 2:
            print(f"shadow-bench [{args.name}]: segfault (fake)", file=sys.stderr)
            return 139
        n = len(request["texts"])
        reply(
            {
                "latencies_ms": [500.0] * n,
                "ttft_ms": [100.0] * n,
                "new_tokens": [7] * n,
                "programs": [PROGRAM] * n,
                "decode_step_ms": [50.0] * (6 * n),
                "peak_rss_mb": 10.0 * len(rounds),
                "warmup_seen": [request["warmup"]],
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
