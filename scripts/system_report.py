"""The system table's scoring and rendering, for `eval_system.py`: simulated success of each program (`SimCache`),
accuracy per input path and language, executed-wrong and routing shares (`summarise`), the latency split of the
spoken commands, the baselines' figures, and the markdown table and plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "adapters" / "robot-dog-shadow"
BASELINE_FIGURES = ADAPTER / "eval_commands.json"
EDGE_CLOUD = ("edge-cloud", "edge-cloud-held-back")

# -- scoring ---------------------------------------------------------------------------------------------------------


class SimCache:
    """End pose / requests of each distinct program on a freshly reset simulated Go2 (the simulation is
    deterministic, so a program is simulated once however many systems produce it)."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "shadow_dog"))
        from shadow_edge.sim.sim_go2 import SimGo2

        self.sim = SimGo2()
        self.runs: dict[str, dict[str, Any]] = {}

    def run(self, program: str) -> dict[str, Any]:
        from shadow_edge.runtime.safety import plan_program
        from shadow_edge.sim.sim_go2 import ORIGIN, execute_plan, request_summary

        if program not in self.runs:
            plan = plan_program(program)
            if not plan.accepted or not plan.steps:
                self.runs[program] = {"executed": False}
            else:
                self.sim.reset(ORIGIN)
                run = execute_plan(self.sim, plan)
                self.runs[program] = {
                    "executed": True,
                    "end": run.end,
                    "upright": run.upright,
                    **request_summary(run),
                }
        return self.runs[program]


def sim_outcome(
    reference: str, program: str | None, accepted: bool, cache: SimCache
) -> dict[str, Any] | None:
    """None when the reference is not a robot command; otherwise whether the robot ended up doing it."""
    from shadow_edge.runtime.safety import plan_program
    from shadow_edge.sim.sim_go2 import ORIGIN
    from shadow_edge.sim.sim_task import check_locomotion, check_requests, is_locomotion, locomotion_target

    ref_plan = plan_program(reference)
    if not ref_plan.accepted or not ref_plan.steps:
        return None
    locomotion = is_locomotion(ref_plan)
    run = cache.run(program) if (accepted and program) else {"executed": False}
    if not run["executed"]:
        return {"locomotion": locomotion, "success": False}
    if locomotion:
        check = check_locomotion(locomotion_target(ref_plan, ORIGIN), run["end"])
        ok = check.success and run["upright"]
        return {"locomotion": True, "success": ok, "position_error_m": check.position_error_m}
    check = check_requests(ref_plan, run["api_ids"], run["sounds"])
    return {"locomotion": False, "success": check.success}


def sim_rates(outcomes: list[dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Success rate and count for locomotion commands and for posture/trick commands (None: not a robot command)."""
    rates = {}
    for kind, want in (("locomotion", True), ("requests", False)):
        chosen = [o for o in outcomes if o is not None and o["locomotion"] == want]
        rates[kind] = {
            "rate": round(sum(o["success"] for o in chosen) / len(chosen), 4) if chosen else None,
            "n": len(chosen),
        }
    return rates


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (numpy's, as every report of the project), rounded; None for no values."""
    from shadow_edge.runtime.stats import percentile

    return round(percentile(values, q), 2) if values else None


def decided_program(result: dict[str, Any]) -> str:
    """The program the system decided on: the cloud's when it answered with a program, else the edge model's."""
    from shadow_edge.runtime.actions import ProgramError, parse_program

    answer = result.get("remote_answer")
    if answer:
        try:
            if parse_program(answer).route in ("robot", "reject"):
                return answer
        except ProgramError:
            pass  # a text answer to a question: the decision stays the edge's `remote`
    return result.get("program") or ""


def summarise(system: str, worker: dict, rows: list[dict], cache: SimCache) -> dict[str, Any]:
    from shadow_edge.runtime.scoring import program_matches, score_programs

    report: dict[str, Any] = {
        "info": worker["info"],
        "command_accuracy": {},
        "executed_wrong": {},
        "sim_success": {},
        "routing": {},
    }
    for path in ("text", "speech"):
        pairs = [
            (row, r[path]) for row, r in zip(rows, worker["results"], strict=True) if r[path] is not None
        ]
        decided = [decided_program(r) for _, r in pairs]
        scored = score_programs(
            decided, [row["program"] for row, _ in pairs], [row["lang"] for row, _ in pairs]
        )
        report["command_accuracy"][path] = {
            "overall": scored["accuracy"],
            "n": scored["n"],
            "per_language": {lang: v["accuracy"] for lang, v in scored["per_language"].items()},
        }
        wrong = sum(bool(r.get("executed")) and not program_matches(program, row["program"])
                    for (row, r), program in zip(pairs, decided, strict=True))  # fmt: skip
        report["executed_wrong"][path] = round(wrong / len(pairs), 4) if pairs else None
    # in simulation: what the robot would do -- from speech where there is speech, else from the typed text
    outcomes = []
    for row, r in zip(rows, worker["results"], strict=True):
        heard = r["speech"] or r["text"]
        program = heard.get("executed_program") or decided_program(heard)
        outcomes.append(sim_outcome(row["program"], program, bool(heard["accepted"]), cache))
    report["sim_success"] = sim_rates(outcomes)
    report["latency_ms"] = latency_split(rows, worker["results"])
    for route in ("remote", "reject"):
        expected = [r for row, r in zip(rows, worker["results"], strict=True) if row["program"] == route]
        report["routing"][f"{route}_correct"] = (
            round(sum(r["text"]["route"] == route for r in expected) / len(expected), 4) if expected else None
        )
    texts = [r["text"] for r in worker["results"]]
    report["routing"]["to_cloud_text"] = round(sum(r["route"] == "remote" or r.get("cloud") is not None
                                                   for r in texts) / max(1, len(texts)), 4)  # fmt: skip
    if system in EDGE_CLOUD or system == "shadow-detached-int8":
        # decided on the robot: the cloud was not asked (for the edge alone: not routed to `remote`)
        report["routing"]["edge_share_text"] = round(1.0 - report["routing"]["to_cloud_text"], 4)
    if any(r.get("cloud") for r in texts):
        asked = [r["cloud"] for r in texts if r.get("cloud")]
        report["routing"]["cloud_failures_text"] = sum(not c["ok"] for c in asked)
        report["routing"]["cloud_failure_examples"] = [r["reason"] for r in texts if r.get("cloud") and
                                                       not r["cloud"]["ok"]][:3]  # fmt: skip
    return report


def latency_split(rows: list[dict], results: list[dict]) -> dict[str, Any]:
    """Speech end -> first motion of the spoken commands that moved the robot, and its parts' medians: VAD, ASR,
    edge model, network (cloud round trip less the server's time), cloud (the server's decision), node."""
    moved, parts = [], {k: [] for k in ("vad", "asr", "edge_model", "network", "cloud", "node")}
    model_all = []
    for row, r in zip(rows, results, strict=True):
        speech = r["speech"]
        if speech is None:
            continue
        lat = speech["latencies_ms"] or {}
        cloud = speech.get("cloud")
        roundtrip = cloud["roundtrip_ms"] if cloud else 0.0
        if lat.get("model") is not None:
            model_all.append(lat["model"])
        if lat.get("total") is None:
            continue
        moved.append(lat["total"])
        parts["vad"].append(row.get("vad_ms", 0.0))
        parts["asr"].append(row.get("asr_ms", 0.0))
        parts["edge_model"].append(lat["model"] - roundtrip)
        parts["node"].append(lat["node"])
        if cloud:
            server = cloud.get("server_ms") or 0.0
            parts["network"].append(roundtrip - server)
            parts["cloud"].append(server)
    return {
        "speech_end_to_first_motion": {
            q: pct(moved, v) for q, v in (("median", 50), ("p90", 90), ("p99", 99))
        },
        "split_median": {part: pct(values, 50) for part, values in parts.items()},
        "n": len(moved),
        "n_via_cloud": len(parts["cloud"]),
        "model_median_all": pct(model_all, 50),
    }


def baseline_figures(system: str) -> dict[str, Any]:
    """A baseline's row from the last `scripts/eval_commands.py` run: text accuracy on the test split only."""
    figures = json.loads(BASELINE_FIGURES.read_text(encoding="utf-8"))["systems"][system]
    return {
        "info": {"runs_on": "pytorch", "source": f"{BASELINE_FIGURES.relative_to(ROOT)} (not re-run here)",
                 "model_mb": None, "peak_rss_mb": None},
        "command_accuracy": {"text": {"overall": figures["accuracy"], "n": figures["n"],
                                      "per_language": {k: v["accuracy"] for k, v in figures["per_language"].items()}}},
        "not_measured": "speech, executed-wrong, simulation, latency and memory: run with --baselines run",
    }  # fmt: skip


def _cell(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}"


def markdown(report: dict) -> str:
    lines = [
        "| system | runs on | size MiB | peak RSS MiB | text en | text zh | speech en | executed wrong text / speech "
        "| edge share | sim locomotion | sim tricks | speech end → motion median / p90 ms "
        "| VAD / ASR / edge model / network / cloud / node median ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in report["systems"].items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} |")
            continue
        info = r["info"]
        size, rss = info.get("model_mb"), info.get("peak_rss_mb")
        if info.get("cloud_model_mb") is not None:
            size = f"{size} + {info['cloud_model_mb']}"
            rss = f"{rss:.0f} + {_cell(info.get('cloud_peak_rss_mb'), digits=0)}"
        else:
            size, rss = _cell(size), _cell(rss, digits=0)
        acc = r["command_accuracy"]

        def lang(path: str, code: str, acc: dict = acc) -> str:
            return _cell(acc.get(path, {}).get("per_language", {}).get(code), 100)

        wrong = r.get("executed_wrong", {})
        sim = r.get("sim_success", {})
        rate = lambda v: "–" if not v or v["rate"] is None else f"{100 * v['rate']:.1f} ({v['n']})"  # noqa: E731
        lat = r.get("latency_ms", {}).get("speech_end_to_first_motion", {})
        split = r.get("latency_ms", {}).get("split_median", {})
        parts = " / ".join(_cell(split.get(k), digits=0) for k in ("vad", "asr", "edge_model", "network", "cloud",
                                                                     "node"))  # fmt: skip
        runs_on = info["runs_on"] + (" (figures from eval_commands.json)" if info.get("source") else "")
        lines.append(
            f"| {name} | {runs_on} | {size} | {rss} | {lang('text', 'en')} | {lang('text', 'zh')} | "
            f"{lang('speech', 'en')} | {_cell(wrong.get('text'), 100)} / {_cell(wrong.get('speech'), 100)} | "
            f"{_cell(r.get('routing', {}).get('edge_share_text'), 100)} | {rate(sim.get('locomotion'))} | "
            f"{rate(sim.get('requests'))} | {_cell(lat.get('median'), digits=0)} / {_cell(lat.get('p90'), digits=0)} "
            f"| {parts} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [n for n, r in report["systems"].items() if "error" not in r]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    x = list(range(len(systems)))
    for offset, path_name in ((-0.2, "text"), (0.2, "speech")):
        values = [100 * (report["systems"][n]["command_accuracy"].get(path_name, {}).get("overall") or 0)
                  for n in systems]  # fmt: skip
        axes[0].bar([i + offset for i in x], values, 0.4, label=path_name)
    axes[0].set_xticks(x, systems, rotation=20, ha="right")
    axes[0].set_ylabel("command accuracy (%)")
    axes[0].set_title("accuracy (baselines from figures: text only)", fontsize=9)
    axes[0].legend()
    bottom = [0.0] * len(systems)
    for part in ("vad", "asr", "edge_model", "network", "cloud", "node"):
        values = [report["systems"][n].get("latency_ms", {}).get("split_median", {}).get(part) or 0.0
                  for n in systems]  # fmt: skip
        axes[1].bar(x, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes[1].set_xticks(x, systems, rotation=20, ha="right")
    axes[1].set_ylabel("speech end → first motion, medians of the parts (ms)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def same_words(a: str, b: str) -> bool:
    words = lambda t: [w.strip(".,!?;:'\"") for w in t.lower().replace("metres", "meters").split()]  # noqa: E731
    return words(a) == words(b)


def oracle_sim_rates(rows: list[dict], cache: SimCache) -> dict[str, Any]:
    """The reference programs themselves through the node executor and the simulated dog."""
    outcomes = [sim_outcome(row["program"], row["program"], True, cache) for row in rows]
    return {kind: rate["rate"] for kind, rate in sim_rates(outcomes).items()}
