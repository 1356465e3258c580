#!/usr/bin/env python3
"""Command accuracy of every system on a robot-dog split, scored as the spec says (exact program match).

    python scripts/eval_commands.py --json build/eval/commands.json --markdown build/eval/commands.md

Systems: `base` (the frozen base, prompted with the action language and examples, no adapter), `lora`, `dora`,
`shadow-attached` (base + ShadowPEFT) and `shadow-detached` (peft's `unload_shadow()`, the shadow alone). All use
PyTorch greedy decoding on the same prompts. Reports overall, per language and per command accuracy, a confusion
table, trainable parameters and wall time per system.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
from shadow_edge.export.base_model import load_base
from shadow_edge.runtime.scoring import format_confusion, score_programs
from shadow_edge.runtime.stats import strided
from shadow_edge.tasks.robot_dog.generator import load_split
from shadow_edge.tasks.robot_dog.recipes import count_trainable
from shadow_edge.tasks.robot_dog.task import generate_programs, model_text

logger = logging.getLogger("eval_commands")
ALL_SYSTEMS = ("base", "lora", "dora", "shadow-attached", "shadow-detached")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADAPTERS = {
    "shadow": ROOT / "adapters" / "robot-dog-shadow",
    "lora": ROOT / "adapters" / "robot-dog-lora",
    "dora": ROOT / "adapters" / "robot-dog-dora",
}

# The un-adapted base gets the language explained, with examples, since it was never trained on it.
FEW_SHOT_PROMPT = """You control a robot dog. Answer with an action program only, nothing else.
Commands: stand_up, lie_down, sit, recover, stop, move x=<metres forward> y=<metres left>, turn deg=<degrees left>,
hello, stretch, dance n=<1|2>, front_flip, front_jump, front_pounce, wiggle_hips, heart, bark n=<1..5>.
Join up to 4 commands with "; ". Answer "remote" for questions or chit-chat, "reject" for impossible or unsafe requests.
Examples:
walk forward two metres -> move x=2
turn right -> turn deg=-90
stand up and then say hello -> stand_up; hello
bark three times -> bark n=3
what is your name? -> remote
fly to the moon -> reject"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="test")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help=f"comma-separated from {ALL_SYSTEMS}")
    p.add_argument(
        "--base", default=None, help="local HF checkpoint (default: bundled SmolLM2-135M-Instruct)"
    )
    for name, path in DEFAULT_ADAPTERS.items():
        p.add_argument(
            f"--{name}", default=path, help=f"{name} adapter directory (default: {path.relative_to(ROOT)})"
        )
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N examples only")
    p.add_argument(
        "--base-limit", type=int, default=240, help="examples for the prompted base (its prompt is long)"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--markdown", type=Path, default=None, help="write the README table here")
    p.add_argument(
        "--update",
        action="store_true",
        help="keep the other systems already in the --json report (same split)",
    )
    return p.parse_args(argv)


def build_system(name: str, args):
    """`(model, tokenizer, trainable_parameters)` for one system, on a freshly loaded base."""
    from peft import PeftModel

    base, tokenizer = load_base(args.base)
    if name == "base":
        return base, tokenizer, 0
    adapter = {"lora": args.lora, "dora": args.dora}.get(name, args.shadow)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{name}: no adapter at {adapter} (train it with scripts/train_robot_dog.py)")
    model = PeftModel.from_pretrained(base, adapter)
    model.eval()
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or "shadow_" in n)
    if name == "shadow-detached":
        detached = model.base_model.unload_shadow()
        detached.eval()
        return detached, tokenizer, count_trainable(detached) or trainable
    return model, tokenizer, trainable


def clean_answer(text: str) -> str:
    """What the prompted base says around a program (quotes, code fences, a trailing period) is not held against
    it; the adapted models never produce these."""
    return text.strip().strip("`").strip().strip("\"'").rstrip(".").strip()


def generation_options(name: str, tokenizer) -> dict:
    """How `name` generates as deployed: the base with its few-shot prompt; the detached shadow with the action head
    (the runtime cuts the LM head down to the tokens a program can use; its rows outside that vocabulary were never
    trained)."""
    if name == "base":
        return {"system_prompt": FEW_SHOT_PROMPT}
    if name == "shadow-detached":
        from shadow_edge.runtime.grammar import action_vocabulary
        from shadow_edge.tasks.robot_dog.task import end_of_turn_id

        return {
            "allowed_token_ids": action_vocabulary(tokenizer.backend_tokenizer, end_of_turn_id(tokenizer))
        }
    return {}


def evaluate(name: str, examples: list[dict], args) -> dict:
    model, tokenizer, trainable = build_system(name, args)
    started = time.time()
    texts = [model_text(e["text"]) for e in examples]  # spoken numbers as digits, as on the robot
    predictions = generate_programs(
        model,
        tokenizer,
        texts,
        batch_size=args.batch_size,
        progress=True,
        **generation_options(name, tokenizer),
    )
    if name == "base":
        predictions = [clean_answer(p) for p in predictions]
    seconds = time.time() - started
    report = score_programs(predictions, [e["program"] for e in examples], [e["lang"] for e in examples])
    report.update(
        system=name,
        trainable_parameters=trainable,
        seconds=round(seconds, 1),
        errors=[
            {"text": e["text"], "expected": e["program"], "got": p}
            for e, p in zip(examples, predictions, strict=True)
            if not _matches(p, e["program"])
        ][:50],
    )
    logger.info("%s: accuracy %.4f on %d examples (%.0f s)", name, report["accuracy"], report["n"], seconds)
    logger.info("confusion (%s):\n%s", name, format_confusion(report["confusion"]))
    return report


def _matches(prediction: str, reference: str) -> bool:
    from shadow_edge.runtime.scoring import program_matches

    return program_matches(prediction, reference)


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown_table(reports: dict[str, dict]) -> str:
    langs = sorted({lang for r in reports.values() for lang in r["per_language"]})
    head = "| system | trainable params | n | overall | " + " | ".join(langs) + " |"
    rule = "|---|---:|---:|---:|" + "---:|" * len(langs)
    rows = [head, rule]
    for name, r in reports.items():
        per = " | ".join(pct(r["per_language"].get(lang, {}).get("accuracy")) for lang in langs)
        rows.append(f"| {name} | {r['trainable_parameters']:,} | {r['n']} | {pct(r['accuracy'])} | {per} |")
    commands = [c for c in next(iter(reports.values()))["per_command"]]
    rows += ["", "| command | " + " | ".join(reports) + " |", "|---|" + "---:|" * len(reports)]
    for c in commands:
        cells = " | ".join(pct(r["per_command"].get(c, {}).get("accuracy")) for r in reports.values())
        rows.append(f"| {c} | {cells} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.manual_seed(0)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL_SYSTEMS]
    if unknown:
        print(f"eval_commands: unknown system(s) {unknown}; choose from {ALL_SYSTEMS}", file=sys.stderr)
        return 2
    examples = strided(load_split(args.split), args.limit)
    reports = {}
    for name in systems:
        subset = strided(examples, args.base_limit) if name == "base" else examples
        try:
            reports[name] = evaluate(name, subset, args)
        except FileNotFoundError as exc:
            print(f"eval_commands: {exc}", file=sys.stderr)
            return 1
    if args.update and args.json and args.json.is_file():
        previous = json.loads(args.json.read_text())
        if previous.get("split") == args.split:
            reports = {**{k: v for k, v in previous["systems"].items() if k not in reports}, **reports}
        reports = {k: reports[k] for k in ALL_SYSTEMS if k in reports}
    result = {"split": args.split, "systems": reports}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    table = markdown_table(reports)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
