#!/usr/bin/env python3
"""The half of `scripts/check_arm64.sh` that runs Python: commands through the runtime, and the x86/arm64 verdict.

    python3 scripts/arm64_runtime_check.py run MODEL_DIR --commands test.jsonl --count 20 --out results.json
    python3 scripts/arm64_runtime_check.py compare --x86 a.json --arm64 b.json --junit tests.xml --out check.json

`run` is executed twice by the shell script, on the x86 host and inside the arm64 root filesystem under qemu, so it
imports only the standard library and `shadow_edge.runtime` (numpy, onnxruntime, tokenizers); it also records that
torch was never imported. Both runs pick the same evenly spaced rows of the same JSONL file and decode them with one
intra-op thread (the result must not depend on how many cores qemu pretends to have).

`compare` runs on the host: programs must be equal exactly, confidences within `--tolerance` (absolute), the pytest
run under emulation must have no failures or errors and at least one pass. It writes the JSON report, prints a
summary and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

RUNTIME_PACKAGES = ("numpy", "onnxruntime", "tokenizers")
DEFAULT_TOLERANCE = 1e-3


def select_rows(path: Path, count: int) -> list[dict[str, Any]]:
    """`count` evenly spaced rows of a JSONL file (every row when it has fewer), so both languages and all kinds
    of the test split are represented rather than just its first lines."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"error: no rows in {path}")
    if count >= len(rows):
        return rows
    return [rows[(i * len(rows)) // count] for i in range(count)]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in RUNTIME_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_commands(args: argparse.Namespace) -> int:
    """Decode the selected commands with `Commander` and write what came out, with the machine it ran on."""
    from shadow_edge.runtime.commander import Commander, ModelLoadError

    rows = select_rows(Path(args.commands), args.count)
    started = time.perf_counter()
    try:
        commander = Commander(args.model_dir, threads=1)
    except ModelLoadError as exc:
        print(f"error: cannot load {args.model_dir}: {exc}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - started
    results = []
    for row in rows:
        result = commander.run(row["text"])
        results.append(
            {
                "id": row.get("id"),
                "text": row["text"],
                "expected": row.get("program"),
                "program": result.program,
                "route": result.route,
                "accepted": result.accepted,
                "confidence": result.confidence,
                "error": result.error,
                "latency_ms": round(result.latency_ms, 3),
            }
        )
    report = {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "runtime": commander.info(),
        "torch_imported": "torch" in sys.modules,
        "load_s": round(load_s, 3),
        "wall_s": round(time.perf_counter() - started, 3),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"{report['machine']}: {len(results)} commands in {report['wall_s']:.1f} s "
        f"(load {report['load_s']:.1f} s), onnxruntime {report['versions']['onnxruntime']}"
    )
    return 0


def read_junit(path: Path) -> dict[str, Any]:
    """Counts from a pytest --junitxml file (all test suites summed) and the ids of failed tests."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {
        "passed": passed,
        "failed": counts["failures"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
        "failed_tests": failed,
    }


QUANTIZED_TOLERANCE = 0.05
MIN_CONFIDENCE = 0.5  # the runtime's default: below it a program is routed to the cloud, never executed


def _precision(model_dir: str | None) -> str:
    try:
        return json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8"))["precision"]
    except (OSError, TypeError, KeyError, ValueError):
        return "fp32"  # unknown: hold it to the strict tolerance


def compare(args: argparse.Namespace) -> int:
    """Compare the two runs and the emulated pytest run; write the report; exit 1 on any mismatch."""
    x86 = json.loads(Path(args.x86).read_text(encoding="utf-8"))
    arm = json.loads(Path(args.arm64).read_text(encoding="utf-8"))
    problems: list[str] = []
    if arm["machine"] != "aarch64":
        problems.append(f"the emulated run reports machine {arm['machine']!r}, not aarch64")
    for side, run in (("x86", x86), ("arm64", arm)):
        if run["torch_imported"]:
            problems.append(f"the {side} run imported torch")
    if [r["text"] for r in x86["results"]] != [r["text"] for r in arm["results"]]:
        problems.append("the two runs decoded different commands")

    # Quantized kernels are not bit-equal across CPUs: onnxruntime's MatMulNBits (accuracy level 4) rounds
    # activations to int8 with different x86 and ARM code. For quantized exports the confidence may differ by up to
    # QUANTIZED_TOLERANCE, and a program may differ only where both sides were unsure (below the runtime's
    # min_confidence) and neither moved the robot; FP32 exports must agree to `--tolerance`.
    precision = _precision(args.model_dir)
    tolerance = args.tolerance if precision == "fp32" else max(args.tolerance, QUANTIZED_TOLERANCE)
    mismatches, unsure_flips = [], []
    max_diff = 0.0
    equal = 0
    for a, b in zip(x86["results"], arm["results"], strict=False):
        same_program = (
            a["program"] == b["program"] and a["route"] == b["route"] and a["accepted"] == b["accepted"]
        )
        if a["confidence"] is None or b["confidence"] is None:
            diff = 0.0 if a["confidence"] == b["confidence"] else float("inf")
        else:
            diff = abs(a["confidence"] - b["confidence"])
        max_diff = max(max_diff, diff)
        equal += same_program
        unsure = (
            precision != "fp32"
            and not (a["accepted"] or b["accepted"])
            and max(a["confidence"] or 0.0, b["confidence"] or 0.0) < MIN_CONFIDENCE
        )
        if not same_program and unsure and diff <= tolerance and not (a["error"] or b["error"]):
            unsure_flips.append({"text": a["text"], "x86": a["program"], "arm64": b["program"]})
            continue
        if not same_program or diff > tolerance or a["error"] or b["error"]:
            mismatches.append(
                {
                    "text": a["text"],
                    "x86": {k: a[k] for k in ("program", "route", "accepted", "confidence", "error")},
                    "arm64": {k: b[k] for k in ("program", "route", "accepted", "confidence", "error")},
                }
            )
    if mismatches:
        problems.append(
            f"{len(mismatches)} of {len(x86['results'])} commands differ (program, route or confidence)"
        )

    tests = read_junit(Path(args.junit)) if args.junit else None
    if tests is not None:
        if tests["failed"] or tests["errors"]:
            problems.append(f"pytest under emulation: {tests['failed']} failed, {tests['errors']} errors")
        if tests["passed"] == 0:
            problems.append("pytest under emulation passed no test")
    elif not args.allow_no_tests:
        problems.append("no pytest result from the emulated run")

    report = {
        "ok": not problems,
        "problems": problems,
        "host": {"machine": x86["machine"], "platform": x86["platform"], "python": x86["python"]},
        "emulated": {
            "machine": arm["machine"],
            "platform": arm["platform"],
            "python": arm["python"],
            "emulator": args.emulator,
        },
        "wheels": {"x86_64": x86["versions"], "aarch64": arm["versions"]},
        "model_dir": args.model_dir,
        "commands": len(x86["results"]),
        "programs_equal": equal,
        "max_confidence_diff": max_diff,
        "precision": precision,
        "tolerance": tolerance,
        "unsure_flips": unsure_flips,
        "expected_program_matches": {
            "x86_64": sum(r["program"] == r["expected"] for r in x86["results"]),
            "aarch64": sum(r["program"] == r["expected"] for r in arm["results"]),
        },
        "decode_wall_s": {"x86_64": x86["wall_s"], "aarch64": arm["wall_s"]},
        "tests": tests,
        "test_files": args.test_files.split() if args.test_files else [],
        "wall_s": args.wall_s,
        "phase_s": json.loads(args.phases) if args.phases else {},
        "mismatches": mismatches,
    }
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    versions = ", ".join(f"{k} {v}" for k, v in arm["versions"].items())
    print(f"arm64 check ({arm['platform']} under {args.emulator}; wheels: {versions})")
    print(
        f"  programs equal: {equal}/{len(x86['results'])}   max |confidence diff|: {max_diff:.2e} "
        f"(tolerance {tolerance:g}, {precision})   decode: x86 {x86['wall_s']:.1f} s, arm64 {arm['wall_s']:.1f} s"
    )
    if tests is not None:
        print(
            f"  pytest under qemu: {tests['passed']} passed, {tests['failed']} failed, "
            f"{tests['errors']} errors, {tests['skipped']} skipped"
        )
    if args.wall_s is not None:
        print(f"  wall time: {args.wall_s:.0f} s")
    for flip in unsure_flips:
        print(
            f"  low-confidence flip (no motion either side) {flip['text']!r}: x86 {flip['x86']} arm64 {flip['arm64']}"
        )
    for mismatch in mismatches:
        print(f"  MISMATCH {mismatch['text']!r}: x86 {mismatch['x86']} arm64 {mismatch['arm64']}")
    print(f"  {'OK' if not problems else 'FAILED: ' + '; '.join(problems)} -> {args.out}")
    return 0 if not problems else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="decode commands with the runtime on this machine")
    r.add_argument("model_dir")
    r.add_argument("--commands", required=True, help="JSONL with a 'text' (and 'program') per line")
    r.add_argument("--count", type=int, default=20)
    r.add_argument("--out", required=True)
    c = sub.add_parser("compare", help="compare an x86 and an arm64 run, write the report")
    c.add_argument("--x86", required=True)
    c.add_argument("--arm64", required=True)
    c.add_argument("--junit", help="pytest --junitxml of the emulated test run")
    c.add_argument("--allow-no-tests", action="store_true")
    c.add_argument("--test-files", default="")
    c.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    c.add_argument("--model-dir", default=None)
    c.add_argument("--emulator", default="qemu-aarch64-static")
    c.add_argument("--wall-s", type=float, default=None)
    c.add_argument("--phases", default=None, help="JSON object: seconds per phase of the shell script")
    c.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.command == "run" and args.count < 1:
        p.error("--count must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_commands(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
