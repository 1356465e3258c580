#!/usr/bin/env python3
"""How well does the simulated Go2 carry out locomotion programs when the node executes them exactly?

Every program (by default: each distinct locomotion program of the robot-dog test split, i.e. the reference
answers) is planned by the safety layer, executed by the node's `PlanExecutor` in lockstep with `SimGo2` from a
fresh, settled dog -- closed loop on the dog's odometry (the Go2's sport-mode state) unless `--open-loop` -- and
scored by `shadow_edge.sim.sim_task.check_locomotion` (0.25 m, 10 deg). This is the ceiling for
any model's simulation success: the program is right by construction, so every miss is the walking policy's (or
the open-loop timed execution's). Prints a table; `--json OUT` writes every run and the summary.

    python3 scripts/measure_sim_tracking.py                       # the test split's locomotion programs
    python3 scripts/measure_sim_tracking.py "move x=1" "turn deg=90" "move y=-0.5"
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
from shadow_edge.runtime.safety import plan_program
from shadow_edge.runtime.stats import summary
from shadow_edge.sim.sim_go2 import SimGo2, SimUnavailable, execute_plan
from shadow_edge.sim.sim_task import check_locomotion, check_requests, is_locomotion, locomotion_target
from shadow_edge.tasks.robot_dog.generator import load_split


def split_programs(split: str) -> list[str]:
    return sorted({row["program"] for row in load_split(split) if is_locomotion(row["program"])})


def measure(programs: list[str], odometry: bool = True) -> dict:
    sim = SimGo2()
    runs = []
    sim_total = wall_total = 0.0
    for program in programs:
        plan = plan_program(program)
        if not plan.accepted:
            runs.append({"program": program, "error": plan.reason})
            continue
        sim.reset()
        started = time.perf_counter()
        run = execute_plan(sim, plan, odometry=odometry)
        wall = time.perf_counter() - started
        sim_total += run.sim_seconds
        wall_total += wall
        check = check_locomotion(locomotion_target(plan, run.start), run.end)
        requests = check_requests(plan, run.api_ids, run.outputs.sounds())
        runs.append(
            {
                "program": program,
                **check.to_json(),
                "start": [run.start.x, run.start.y, math.degrees(run.start.yaw)],
                "requests_ok": requests.success,
                "upright": run.upright,
                "success": check.success and requests.success and run.upright,
                "sim_s": round(run.sim_seconds, 3),
                "wall_s": round(wall, 3),
            }
        )
    scored = [r for r in runs if "error" not in r]
    pos = np.array([r["position_error_m"] for r in scored])
    yaw = np.array([r["yaw_error_deg"] for r in scored])

    def stats(values: np.ndarray) -> dict:
        figures = summary(values.tolist())
        return {key: figures[key] for key in ("median", "p90", "max")}

    totals = {
        "programs": len(scored),
        "success_rate": round(sum(r["success"] for r in scored) / len(scored), 4),
        "position_ok_rate": round(float(np.mean(pos <= 0.25)), 4),
        "yaw_ok_rate": round(float(np.mean(yaw <= 10.0)), 4),
        "position_error_m": stats(pos),
        "yaw_error_deg": stats(yaw),
        "sim_seconds": round(sim_total, 1),
        "wall_seconds": round(wall_total, 2),
        "speed_x_realtime": round(sim_total / wall_total, 1) if wall_total else None,
    }
    return {"summary": totals, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "programs", nargs="*", help="programs to run (default: the split's locomotion programs)"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument(
        "--open-loop",
        action="store_true",
        help="give the executor no odometry: timed segments, as without closed_loop (for a side-by-side)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    programs = args.programs or split_programs(args.split)
    try:
        report = measure(programs, odometry=not args.open_loop)
        report["summary"]["closed_loop"] = not args.open_loop
    except SimUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in report["runs"]:
        if "error" in r:
            print(f"{r['program']:45s} refused: {r['error']}")
            continue
        print(
            f"{r['program']:45s} pos err {r['position_error_m']:.3f} m  yaw err {r['yaw_error_deg']:5.1f} deg  "
            f"{'ok' if r['success'] else 'MISS'}"
        )
    print(json.dumps(report["summary"], indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
