#!/usr/bin/env python3
"""Shadow pre-training: train the robot-dog shadow backbone on its own, as a K-layer causal LM on the frozen base's
embeddings and head (`shadow_edge.tasks.robot_dog.standalone`).

    python scripts/train_shadow_standalone.py --layers 8 --steps 2000 --out build/shadow-standalone-8

Writes `<out>/shadow_state.safetensors` (layers and final norm, keyed as peft's shadow backbone),
`<out>/training_record.json` (recipe, data hashes, losses, validation figures, time, versions) and a loss-curve plot.
`scripts/train_robot_dog.py --init-shadow <out>` then grafts it into a ShadowPEFT adapter and trains injection and
update around it. Command texts go through the runtime's number normaliser, as on the robot.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from shadow_edge.export.base_model import load_base
from shadow_edge.runtime.digest import file_sha256
from shadow_edge.runtime.grammar import action_vocabulary
from shadow_edge.tasks.robot_dog.generator import DATA_DIR, load_split
from shadow_edge.tasks.robot_dog.recipes import lr_at
from shadow_edge.tasks.robot_dog.standalone import (
    build_standalone_shadow,
    load_shadow_state,
    restricted_tail_loss,
    shadow_state_dict,
)
from shadow_edge.tasks.robot_dog.task import collate, encode_example, end_of_turn_id, model_text
from shadow_edge.tasks.robot_dog.training_data import PolitenessStacker, add_data_arguments, training_examples
from tqdm.auto import tqdm

logger = logging.getLogger("train_shadow_standalone")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=8, help="shadow depth K")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast (faster on CPUs with AVX512-BF16/AMX)"
    )
    p.add_argument("--init-state", type=Path, default=None, help="start from this shadow_state.safetensors")
    add_data_arguments(p)
    p.add_argument("--eval-every", type=int, default=250, help="validation loss every N steps")
    p.add_argument("--limit", type=int, default=None, help="first N training examples only (smoke runs)")
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="train for this long instead of --steps: the schedule follows elapsed time (robust on a shared machine)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    base, tokenizer = load_base()
    model = build_standalone_shadow(base, args.layers)
    if args.init_state:
        from safetensors.torch import load_file

        try:
            load_shadow_state(model, load_file(args.init_state))
        except ValueError as exc:
            raise SystemExit(f"{args.init_state}: {exc} (a {args.layers}-layer shadow)") from None
        logger.info("started from %s", args.init_state)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    logger.info(
        "standalone shadow: %d layers, %d trainable parameters",
        args.layers,
        sum(p.numel() for p in trainable),
    )

    eos = end_of_turn_id(tokenizer)
    vocab = action_vocabulary(tokenizer.backend_tokenizer, eos)
    vocab_ids = torch.tensor(vocab)
    vocab_index = torch.full((len(tokenizer),), -1, dtype=torch.long)
    vocab_index[vocab_ids] = torch.arange(len(vocab))

    def encode(ex: dict, text: str | None = None):
        return encode_example(tokenizer, model_text(ex["text"] if text is None else text), ex["program"])

    data_sha256 = {p.name: file_sha256(p) for p in sorted(DATA_DIR.glob("*.jsonl"))}  # what is read now
    train = training_examples(args.extra_seeds, asr_repeats=args.asr_repeats, asr_sets=args.asr_sets)
    train = train[: args.limit] if args.limit else train
    stack_politeness = PolitenessStacker(args.stack_politeness, args.seed)
    val = [encode(ex) for ex in load_split("validation")[:256]]
    pad_id = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def loss_of(batch_examples) -> torch.Tensor:
        batch = collate(batch_examples, pad_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            return restricted_tail_loss(model, batch, vocab_ids, vocab_index)

    @torch.no_grad()
    def validation_loss() -> float:
        model.eval()
        losses = [loss_of(val[i : i + 64]).item() for i in range(0, len(val), 64)]
        model.train()
        return sum(losses) / len(losses)

    rng = random.Random(args.seed)
    order: list[int] = []
    history, evals = [], []
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    budget = 60 * args.minutes if args.minutes else None
    bar = tqdm(total=None if budget else args.steps, desc=f"shadow K={args.layers}")
    step = 0

    def progress() -> float:
        return (time.time() - started) / budget if budget else step / args.steps

    while progress() < 1.0:
        if len(order) < args.batch_size:
            fresh = list(range(len(train)))
            rng.shuffle(fresh)
            order += fresh
        picked, order = order[: args.batch_size], order[args.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.lr, args.warmup, progress(), floor=0.05)
        loss = loss_of([encode(train[i], stack_politeness(train[i])) for i in picked])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        step += 1
        history.append(
            {"step": step, "loss": round(loss.item(), 5), "seconds": round(time.time() - started, 1)}
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % args.eval_every == 0:
            evals.append({"step": step, "validation_loss": round(validation_loss(), 5)})
            logger.info("step %d: validation loss %.4f", step, evals[-1]["validation_loss"])
            save_file(shadow_state_dict(model), args.out / "shadow_state.safetensors")
    bar.close()
    evals.append({"step": step, "validation_loss": round(validation_loss(), 5)})
    save_file(shadow_state_dict(model), args.out / "shadow_state.safetensors")

    import peft
    import transformers

    record = {
        "stage": "standalone shadow pre-training",
        "layers": args.layers,
        "steps": step,
        "budget": f"{args.minutes} minutes" if budget else f"{args.steps} steps",
        "batch_size": args.batch_size,
        "peak_lr": args.lr,
        "warmup": args.warmup,
        "schedule": "linear warm-up, cosine to 5% of peak over the budget",
        "bf16": args.bf16,
        "seed": args.seed,
        "loss": "cross-entropy of program tokens over the action vocabulary",
        "action_vocabulary": len(vocab),
        "train_examples": len(train),
        "extra_seeds": args.extra_seeds,
        "stack_politeness": args.stack_politeness,
        "asr_repeats": args.asr_repeats,
        "asr_sets": args.asr_sets if args.asr_repeats else [],
        "init_state": str(args.init_state) if args.init_state else None,
        "text_normalization": "shadow_edge.runtime.normalize.normalize_numbers",
        "data_sha256": data_sha256,
        "threads": torch.get_num_threads(),
        "train_seconds": round(time.time() - started, 1),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "validation": evals,
        "loss_history": history,
    }
    (args.out / "training_record.json").write_text(json.dumps(record, indent=1) + "\n")
    plot_losses(history, evals, args.out / "loss_curve.png", f"standalone shadow, K={args.layers}")
    logger.info("saved %s", args.out)
    return 0


def plot_losses(history: list[dict], evals: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    window = 25
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, color="#cccccc", linewidth=0.8, label="training loss")
    ax.plot(steps, smooth, color="#1f77b4", label=f"training loss ({window}-step mean)")
    if evals:
        ax.plot(
            [e["step"] for e in evals],
            [e["validation_loss"] for e in evals],
            "o-",
            color="#d62728",
            label="validation loss",
        )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (program tokens)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
