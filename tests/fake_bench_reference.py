"""A stand-in for `shadow_edge.export.bench_references` in shadow-bench's CLI tests: same arguments, canned
measurements (500 ms per command, the scripted program), or a failure when FAKE_REFERENCE_FAIL is set."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROGRAM = "sit; move x=1.5"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    for option in ("--texts", "--out", "--adapter", "--base", "--cache-dir"):
        parser.add_argument(option)
    for option in ("--max-new-tokens", "--warmup", "--threads"):
        parser.add_argument(option, type=int)
    args = parser.parse_args()
    if os.environ.get("FAKE_REFERENCE_FAIL"):
        print(f"shadow-bench [{args.name}]: injected reference failure", file=sys.stderr)
        return 1
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))["texts"]
    result = {
        "implementation": f"fake {args.name}",
        "received_adapter": args.adapter,
        "latencies_ms": [500.0] * len(texts),
        "ttft_ms": [100.0] * len(texts),
        "new_tokens": [7] * len(texts),
        "programs": [PROGRAM] * len(texts),
        "decode_step_ms": [50.0] * (6 * len(texts)),
    }
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
