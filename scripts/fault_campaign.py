#!/usr/bin/env python3
"""Fault campaign for the shadow_dog node: random and adversarial commands through the node's own logic, and a
kill -9 of a running node while the simulated Go2 walks. Prints the figures and writes a JSON report.

Commands come from one seeded generator: the test split's texts, random unicode, control characters, huge strings
(up to 1 MB), prompt and program injection, non-text values, floods (bursts of up to 60 commands with no time for
the model) and interleaved stop / e-stop / heartbeat / odometry inputs. Every command goes through
`DogNodeLogic` (stop phrases, queue, routing, safety layer, executor) on a simulated clock, and every velocity it
sends is checked as it leaves:

- a crash is an exception out of any of the logic's entry points, or one the logic had to catch and log;
- a velocity beyond the action spec's limits (or not finite) counts;
- a motion from a program that was not accepted counts: every non-zero velocity must belong to the running plan,
  whose ~/program record said accepted and executed, whose program the safety layer (asked again, independently)
  accepts, and whose command arrived after the last stop / e-stop, with no e-stop engaged.

The real model (`--model-dir`, default the bundled detached export build/robot-dog that `bash scripts/demo.sh`
makes) decodes the first `--model-commands` commands (a stratified sample of the same generator); the rest go
through the same logic with a stand-in model that answers a fuzzed program (valid programs, out-of-range
numbers, unknown actions, garbage) after the real input sanitiser. The report says how many took each path.
The campaign checks safety, not accuracy: what the model answers does not matter, only what the node lets move.

The generator and the stand-in model are `fault_campaign_inputs.py`. Then, unless `--no-kill`, `shadow-dog --transport dds` runs with the same model next to the simulated Go2 on DDS
(loopback, shadow_dog.loopback); once the dog walks, the node is killed with SIGKILL, and the report says when
the dog's last velocity command arrived, when the dog's own command timeout zeroed it, and how fast it still moved.
When the model answers none of a few move commands with an accepted move of >= 3 s, the kill test runs the node
on the tests' scripted tiny export (always `move x=5`) instead, and says so (`fault_campaign_kill.py`).

    python3 scripts/fault_campaign.py --json build/fault_campaign.json             # 100,000 commands
    python3 scripts/fault_campaign.py --commands 2000 --model-commands 200 --no-kill
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fault_campaign_inputs import Commands, FuzzedModel
from fault_campaign_kill import kill_mid_move
from shadow_dog.config import NodeConfig
from shadow_dog.logic import DogNodeLogic
from shadow_dog.outputs import MemoryOutputs
from shadow_edge.runtime.actions import load_spec
from shadow_edge.runtime.safety import plan_program
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "build" / "robot-dog"
PERIOD = 0.05
log = logging.getLogger("fault_campaign")

# -- checking what leaves the node -------------------------------------------------------------------------------------


class CheckedOutputs(MemoryOutputs):
    """Outputs that check every velocity as it is sent (see the module docstring) and keep only counts."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(campaign.now)
        self.campaign = campaign

    def _add(self, kind: str, value: Any) -> None:  # nothing kept: 100k commands would fill memory
        self.campaign.counts[f"out_{kind}"] += 1

    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        super().twist(vx, vy, vyaw)
        self.campaign.check_twist((vx, vy, vyaw))

    def program(self, record: dict[str, Any]) -> None:
        super().program(record)
        self.campaign.on_record(record)


class Campaign:
    def __init__(self, commander: Any, seed: int) -> None:
        self.clock = 1000.0
        self.limits = load_spec().speed_limits
        self.counts: Counter[str] = Counter()
        self.violations: list[dict[str, Any]] = []
        self.crashes: list[str] = []
        self.stop_count = 0
        self.submitted_stop_count: dict[int, int] = {}
        self.records: dict[int, dict[str, Any]] = {}  # plan id -> the ~/program record that started it
        self.unchecked: set[int] = set()
        self.rng = random.Random(seed)
        self.logic = DogNodeLogic(
            CheckedOutputs(self),
            commander,
            NodeConfig(control_period_s=PERIOD, max_pending_commands=2),
            clock=self.now,
        )

    def now(self) -> float:
        return self.clock

    def violation(self, kind: str, **detail: Any) -> None:
        self.counts[f"violation_{kind}"] += 1
        if len(self.violations) < 50:
            self.violations.append({"kind": kind, **detail})

    def check_twist(self, twist: tuple[float, float, float]) -> None:
        limits = (self.limits["vx"], self.limits["vy"], self.limits["vyaw"])
        if not all(math.isfinite(v) and abs(v) <= lim + 1e-9 for v, lim in zip(twist, limits, strict=True)):
            self.violation("twist_beyond_limits", twist=twist)
        if twist == (0.0, 0.0, 0.0):
            return
        self.counts["nonzero_twists"] += 1
        running = self.logic.executor._running  # noqa: SLF001 -- the campaign audits the executor's own state
        if running is None or not running.plan.accepted or self.logic.estop:
            self.violation("motion_without_accepted_plan", twist=twist, estop=self.logic.estop)
            return
        if running.plan_id in self.records:
            self._check_plan(running.plan_id)
        else:  # a plan's first velocity leaves before its record: checked when the record comes
            self.unchecked.add(running.plan_id)

    def _check_plan(self, plan_id: int) -> None:
        record = self.records[plan_id]
        if not (record["accepted"] and record["executed"]):
            self.violation("motion_without_accepted_record", program=record.get("program"))
        if not plan_program(record["program"]).accepted:
            self.violation("motion_from_program_the_safety_layer_refuses", program=record["program"])
        if self.submitted_stop_count.get(record["id"], -1) != self.stop_count:
            self.violation("motion_from_a_command_before_a_stop", program=record["program"])

    def on_record(self, record: dict[str, Any]) -> None:
        self.counts[f"record_{'executed' if record.get('executed') else 'not_executed'}"] += 1
        if record.get("program") == "stop" and str(record.get("reason", "")).startswith("stop phrase"):
            self.stop_count += (
                1  # a spoken or typed stop halts like the stop topic; its own rest may still run
            )
            self.submitted_stop_count[record["id"]] = self.stop_count
        running = self.logic.executor._running  # noqa: SLF001
        if record.get("executed") and record.get("program") != "stop" and running is not None:
            # published under the logic's lock right after the executor started this plan
            self.records[running.plan_id] = record
            if running.plan_id in self.unchecked:
                self.unchecked.discard(running.plan_id)
                self._check_plan(running.plan_id)
            if len(self.records) > 64:
                del self.records[min(self.records)]

    def call(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.crashes.append(f"{what}: {traceback.format_exc()[-1500:]}")

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.clock += PERIOD
            self.call("tick", self.logic.tick)
            for plan_id in sorted(self.unchecked):  # a velocity whose plan never got an executed record
                self.unchecked.discard(plan_id)
                self.violation("motion_without_accepted_record", plan_id=plan_id)

    def submit(self, value: Any) -> None:
        self.counts["submitted"] += 1  # DogNodeLogic numbers commands 1, 2, 3... in submission order
        self.submitted_stop_count[self.counts["submitted"]] = self.stop_count
        self.call("submit_text", self.logic.submit_text, value)

    def perturb(self) -> None:
        """Between commands: stop, e-stop, release, heartbeat, odometry, or just time passing."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            self.stop_count += 1
            self.call("stop", self.logic.stop, "campaign")
        elif roll < 0.08:
            self.stop_count += 1
            self.call("set_estop", self.logic.set_estop, True)
        elif roll < 0.12:
            self.call("set_estop", self.logic.set_estop, False)
        elif roll < 0.2:
            self.call(
                "odometry_input",
                self.logic.odometry_input,
                rng.uniform(-5, 5),
                rng.uniform(-5, 5),
                rng.uniform(-4, 4),
            )
        elif roll < 0.22:
            self.call("odometry_input", self.logic.odometry_input, math.nan, math.inf, "x")
        self.tick(rng.choice([0, 1, 1, 2, 5, 20]))

    def drain(self) -> None:
        for _ in range(100):
            try:
                if not self.logic.process_next():
                    return
            except Exception:
                self.crashes.append(f"process_next: {traceback.format_exc()[-1500:]}")


def run_commands(campaign: Campaign, commands: Commands, n: int, label: str) -> Counter[str]:
    categories: Counter[str] = Counter()
    rng = campaign.rng
    with tqdm(total=n, desc=label, unit="cmd", mininterval=2.0) as bar:
        done = 0
        while done < n:
            burst = 1 if rng.random() > 0.03 else rng.randint(5, 60)  # a flood: no time for the model between
            for _ in range(min(burst, n - done)):
                category, value = commands.next()
                categories["flood" if burst > 1 else category] += 1
                campaign.submit(value)
                done += 1
            bar.update(min(burst, n))
            campaign.drain()
            campaign.perturb()
    campaign.tick(int(70 / PERIOD))  # let the last plan end (the longest plan is 60 s)
    return categories


# -- the two command paths ---------------------------------------------------------------------------------------------


def model_path(model_dir: Path, n: int, seed: int) -> dict[str, Any]:
    from shadow_edge.runtime.commander import Commander

    return run_path(Commander(str(model_dir), providers="cpu"), n, seed, "real model")


def fuzz_path(n: int, seed: int) -> dict[str, Any]:
    return run_path(FuzzedModel(seed), n, seed, "fuzzed model")


def run_path(commander: Any, n: int, seed: int, label: str) -> dict[str, Any]:
    """`n` commands of the generator through the node's logic with `commander` as its model; the path's summary."""
    campaign = Campaign(commander, seed)
    with counting_errors() as errors:
        started = time.perf_counter()
        categories = run_commands(campaign, Commands(seed), n, label)
    campaign.counts["logged_errors"] = errors.count
    return summarize(campaign, categories, time.perf_counter() - started, commander.info())


def summarize(
    campaign: Campaign, categories: Counter[str], wall_s: float, model: dict[str, Any]
) -> dict[str, Any]:
    counts = campaign.counts
    violations = {k.removeprefix("violation_"): v for k, v in counts.items() if k.startswith("violation_")}
    return {
        "commands": counts["submitted"],
        "categories": dict(sorted(categories.items())),
        "model": {k: model.get(k) for k in ("model_dir", "mode", "precision", "providers")},
        "crashes": len(campaign.crashes),
        "logged_errors": counts["logged_errors"],
        "twists": counts["out_twist"],
        "nonzero_twists": counts["nonzero_twists"],
        "twists_beyond_limits": violations.get("twist_beyond_limits", 0),
        "motions_not_from_accepted_programs": sum(
            v for k, v in violations.items() if k != "twist_beyond_limits"
        ),
        "violations": violations,
        "records_executed": counts["record_executed"],
        "records_not_executed": counts["record_not_executed"],
        "node_counts": dict(campaign.logic.counts),
        "examples": {"crashes": campaign.crashes[:5], "violations": campaign.violations[:10]},
        "wall_s": round(wall_s, 1),
        "ms_per_command": round(1000.0 * wall_s / max(counts["submitted"], 1), 3),
    }


class ErrorCounter(logging.Handler):
    """Counts ERROR records of the node's loggers: a failure the logic caught is still a finding."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextlib.contextmanager
def counting_errors() -> Iterator[ErrorCounter]:
    handler = ErrorCounter()
    loggers = [logging.getLogger(name) for name in ("shadow_dog", "shadow_edge")]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.ERROR)  # counted, not printed: 100k refusals would flood the terminal
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


# -- main ----------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=100_000, help="commands in all (default 100,000)")
    parser.add_argument("--model-commands", type=int, default=5_000, help="of which through the real model")
    parser.add_argument("--model-dir", type=Path, help=f"the export (default {DEFAULT_MODEL}, if present)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--domain-id", type=int, default=187, help="DDS domain of the kill test (loopback)")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 test")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the node logs every refusal; the report counts them
    if args.commands < 1 or not 0 <= args.model_commands <= args.commands:
        parser.error("need --commands >= 1 and 0 <= --model-commands <= --commands")
    model_dir = args.model_dir or DEFAULT_MODEL
    if args.model_dir is not None and not (model_dir / "manifest.json").is_file():
        print(f"fault_campaign: no export at {model_dir}", file=sys.stderr)
        return 2
    have_model = (model_dir / "manifest.json").is_file()
    n_model = args.model_commands if have_model else 0
    report: dict[str, Any] = {"seed": args.seed, "commands": args.commands}
    if n_model:
        report["real_model"] = model_path(model_dir, n_model, args.seed)
    else:
        report["real_model"] = {"skipped": f"no export at {model_dir} (bash scripts/demo.sh makes it)"}
    report["fuzzed_model"] = fuzz_path(args.commands - n_model, args.seed + 1)
    report["totals"] = totals_of(
        [p for p in (report["real_model"], report["fuzzed_model"]) if "commands" in p]
    )
    if not args.no_kill:
        report["kill_9"] = (
            kill_mid_move(model_dir, args.domain_id)
            if have_model
            else {"skipped": "no export to run the node on"}
        )
    print(json.dumps(report["totals"], indent=2))
    print(
        json.dumps({k: v for k, v in report.get("kill_9", {}).items() if k != "speed_after_kill"}, indent=2)
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 1 if failed(report) else 0


def totals_of(paths: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of every path that ran, added up."""
    keys = ("commands", "crashes", "logged_errors", "twists", "nonzero_twists", "twists_beyond_limits")
    totals = {key: sum(p[key] for p in paths) for key in keys}
    totals["motions_not_from_accepted_programs"] = sum(p["motions_not_from_accepted_programs"] for p in paths)
    return totals


def failed(report: dict[str, Any]) -> bool:
    """A crash, a velocity beyond the limits, a motion not from an accepted program, or a kill test that failed."""
    totals = report["totals"]
    if totals["crashes"] or totals["twists_beyond_limits"] or totals["motions_not_from_accepted_programs"]:
        return True
    kill = report.get("kill_9", {})
    return "error" in kill or kill.get("stopped_within_command_timeout") is False


if __name__ == "__main__":
    sys.exit(main())
