"""Reference implementations `shadow-bench --against` compares the runtime with (they need torch, so not runtime).

- ``torch``: peft's own detached shadow, `PeftModel.from_pretrained(base, adapter).base_model.unload_shadow()` (a
  `DetachedShadowModel`), run with Hugging Face `generate`: FP32, KV cache, greedy.
- ``optimum``: the same detached shadow as an ordinary HF checkpoint (`export.detached.save_detached`), exported by
  optimum-onnx (`text-generation-with-past`, FP32) and run with `ORTModelForCausalLM.generate`, greedy. The export
  is cached under `--cache-dir`, keyed by the adapter's and base's files, so only the first run pays for it.
- ``optimum-int8``: that export quantized by optimum's `ORTQuantizer` (dynamic INT8, per-channel weights; AVX2 /
  ARM64 config by machine), run the same way: the strongest off-the-shelf baseline, at the runtime's own precision.

Both get the same commands, the same chat prompt the model was trained with, the same `max_new_tokens` and the same
number of threads as the runtime, and are timed the same way: text in -> program text decoded -> validated by the
same safety layer (`runtime.safety.plan_program`). Time to first token and the per-token decode steps are stamped
inside the same `generate` call by a logits processor (see `command_runner`).

`shadow-bench` runs each reference in its own process (`python -m shadow_edge.bench.references NAME ...`), so
the runtime's process never imports torch and each implementation's peak memory is its own. It sends rounds of
commands over stdin and reads the measurements back from stdout (`serve`); logs go to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from shadow_edge.runtime.digest import files_sha256
from shadow_edge.runtime.logs import setup_logging

log = logging.getLogger(__name__)

REFERENCES = ("torch", "optimum", "optimum-int8")
EXIT_OK, EXIT_ERROR, EXIT_MISSING = 0, 1, 3
# the packages each reference needs (import names), and what to install when they are missing
NEEDS = {
    "torch": ("torch", "transformers", "peft"),
    "optimum": ("torch", "transformers", "peft", "optimum.onnxruntime", "optimum.exporters.onnx"),
    "optimum-int8": ("torch", "transformers", "peft", "optimum.onnxruntime", "optimum.exporters.onnx"),
}
INSTALL_HINT = "pip install 'shadow-edge[export]'"


class ReferenceError(RuntimeError):
    """A reference cannot be built or run here; the message says what is missing or wrong."""


def missing_packages(name: str) -> list[str]:
    """The packages reference `name` needs that cannot be imported (imports them, so only in the reference's
    own process)."""
    import importlib

    missing = []
    for module in NEEDS[name]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


# -- building the models -------------------------------------------------------------------------------------------


def _load_peft(base: str | None, adapter: str) -> tuple[Any, Any]:
    """`(peft_model, tokenizer)`: the base (bundled SmolLM2 when `base` is None) with the ShadowPEFT adapter."""
    from peft import PeftModel
    from shadow_edge.export.base_model import load_base

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ReferenceError(f"{adapter}: no adapter_config.json (not a peft adapter directory)")
    base_model, tokenizer = load_base(base)
    model = PeftModel.from_pretrained(base_model, adapter)
    model.eval()
    return model, tokenizer


def _greedy(model: Any) -> None:
    """Greedy decoding without the sampling defaults a chat model's generation config carries (and their warnings)."""
    config = model.generation_config
    config.do_sample = False
    config.num_beams = 1
    for attr in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        if hasattr(config, attr):
            setattr(config, attr, None)


def build_torch(base: str | None, adapter: str, threads: int) -> tuple[Any, Any, dict[str, Any]]:
    """peft's `DetachedShadowModel` (a private copy; the base is released) and the tokenizer."""
    import peft
    import torch
    import transformers

    torch.set_num_threads(threads)
    peft_model, tokenizer = _load_peft(base, adapter)
    detached = peft_model.base_model.unload_shadow(copy=True)
    del peft_model
    gc.collect()
    detached.eval()
    _greedy(detached)
    details = {
        "implementation": "peft DetachedShadowModel.generate (PyTorch, fp32, KV cache, greedy)",
        "precision": "fp32",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
    }
    return detached, tokenizer, details


def optimum_export(peft_model: Any, tokenizer: Any, base_dir: Path, adapter: str, cache_dir: Path) -> Path:
    """The detached shadow exported by optimum-onnx (FP32, with past), cached by the adapter's and base's files."""
    from shadow_edge.export.detached import save_detached
    from shadow_edge.export.optimum_detached import optimum_export_checkpoint

    weights = sorted(Path(adapter).glob("*.safetensors")) + [Path(adapter) / "adapter_config.json"]
    weights += sorted(base_dir.glob("*.safetensors")) + [base_dir / "config.json"]
    key = files_sha256([p for p in weights if p.is_file()])[:16]
    target = cache_dir / f"optimum-detached-{key}"
    if (target / "config.json").is_file() and any(target.glob("*.onnx")):
        log.info("optimum export: using the cached %s", target)
        return target
    partial = cache_dir / f".optimum-detached-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        log.info("optimum export: saving the detached shadow and exporting it with optimum-onnx (once)")
        source = save_detached(peft_model, partial / "detached", tokenizer, adapter_path=adapter)
        optimum_export_checkpoint(source, partial / "onnx")
        shutil.rmtree(target, ignore_errors=True)
        (partial / "onnx").rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def optimum_quantize(onnx_dir: Path, cache_dir: Path) -> Path:
    """optimum's dynamic INT8 quantization (`ORTQuantizer`, per-channel) of an optimum export, cached beside it."""
    import platform

    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    target = cache_dir / onnx_dir.name.replace("optimum-detached-", "optimum-int8-detached-")
    if (target / "model_quantized.onnx").is_file():
        log.info("optimum int8: using the cached %s", target)
        return target
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    arm = platform.machine().lower() in ("aarch64", "arm64")
    config = (AutoQuantizationConfig.arm64 if arm else AutoQuantizationConfig.avx2)(
        is_static=False, per_channel=True
    )
    log.info("optimum int8: quantizing %s with ORTQuantizer (dynamic, per-channel; once)", onnx_dir.name)
    try:
        ORTQuantizer.from_pretrained(onnx_dir, file_name="model.onnx").quantize(
            save_dir=partial, quantization_config=config
        )
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def build_optimum(
    base: str | None, adapter: str, threads: int, cache_dir: Path, int8: bool = False
) -> tuple[Any, Any, dict[str, Any]]:
    """`ORTModelForCausalLM` over optimum's export of the detached shadow (quantized by optimum with `int8`), and
    the tokenizer."""
    import onnxruntime as ort
    import optimum.onnxruntime as optimum_ort
    import torch
    import transformers
    from shadow_edge.export.base_model import resolve_base

    torch.set_num_threads(threads)
    base_dir = resolve_base(base)
    peft_model, tokenizer = _load_peft(str(base_dir), adapter)
    onnx_dir = optimum_export(peft_model, tokenizer, base_dir, adapter, cache_dir)
    del peft_model
    gc.collect()
    file_name = "model.onnx"
    if int8:
        onnx_dir, file_name = optimum_quantize(onnx_dir, cache_dir), "model_quantized.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = optimum_ort.ORTModelForCausalLM.from_pretrained(
        onnx_dir,
        file_name=file_name,
        provider="CPUExecutionProvider",
        session_options=options,
        use_cache=True,
    )
    _greedy(model)
    try:
        from importlib.metadata import version

        optimum_version = version("optimum")
        optimum_onnx_version = version("optimum-onnx")
    except Exception:  # metadata missing in an odd install: the numbers do not depend on it
        optimum_version = optimum_onnx_version = None
    precision = "int8 (ORTQuantizer dynamic, per-channel)" if int8 else "fp32"
    details = {
        "implementation": f"optimum-onnx export of the detached shadow, ORTModelForCausalLM.generate ({precision}, "
        "greedy)",
        "precision": "int8" if int8 else "fp32",
        "onnx_dir": str(onnx_dir),
        "onnx_file": file_name,
        "versions": {
            "optimum": optimum_version,
            "optimum-onnx": optimum_onnx_version,
            "onnxruntime": ort.__version__,
            "transformers": transformers.__version__,
        },
    }
    return model, tokenizer, details


# -- measuring -----------------------------------------------------------------------------------------------------


def command_runner(model: Any, tokenizer: Any, max_new_tokens: int) -> Callable[[str], dict[str, Any]]:
    """`run(text)` -> one command's measurement: prompt, greedy generate, decode, safety layer (what the runtime
    does for one command), timed as a whole (`latency_ms`) and per model call. A logits processor stamps the time
    whenever `generate` has new logits, i.e. after every forward pass: the first stamp is the first token
    (`ttft_ms`, from text in), the gaps between stamps are the one-token decode steps (`step_ms`)."""
    import torch
    from shadow_edge.runtime.actions import load_spec
    from shadow_edge.runtime.safety import plan_program
    from shadow_edge.tasks.robot_dog.task import encode_prompt, end_of_turn_id
    from transformers import LogitsProcessor, LogitsProcessorList

    class _Stamps(LogitsProcessor):
        def __init__(self) -> None:
            self.times: list[float] = []

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            self.times.append(time.perf_counter())
            return scores

    spec = load_spec()
    eos = end_of_turn_id(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    @torch.inference_mode()
    def run(text: str) -> dict[str, Any]:
        stamps = _Stamps()
        start = time.perf_counter()
        ids = torch.tensor([encode_prompt(tokenizer, text)], dtype=torch.long)
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            eos_token_id=eos,
            pad_token_id=pad,
            logits_processor=LogitsProcessorList([stamps]),
        )
        new = out[0, ids.shape[1] :].tolist()
        answer = tokenizer.decode(
            new[: new.index(eos)] if eos in new else new, skip_special_tokens=True
        ).strip()
        plan = plan_program(answer, spec)
        latency = (time.perf_counter() - start) * 1000.0
        times = stamps.times
        return {
            "program": plan.program or answer,
            "new_tokens": len(new),
            "latency_ms": latency,
            "ttft_ms": (times[0] - start) * 1000.0 if times else None,
            "step_ms": [(b - a) * 1000.0 for a, b in zip(times, times[1:], strict=False)],
        }

    return run


def measure(
    run: Callable[[str], dict[str, Any]], texts: Sequence[str], warmup: int, progress_every: int = 0
) -> dict[str, list]:
    """Per-command latency (text -> validated program), time to first token, new tokens and programs, and every
    one-token decode step (`decode_step_ms`), after `warmup` unmeasured commands."""
    for i in range(max(0, warmup) if texts else 0):
        run(texts[i % len(texts)])
    result: dict[str, list] = {
        "latencies_ms": [],
        "ttft_ms": [],
        "new_tokens": [],
        "programs": [],
        "decode_step_ms": [],
    }
    for i, text in enumerate(texts):
        one = run(text)
        result["latencies_ms"].append(one["latency_ms"])
        result["ttft_ms"].append(one["ttft_ms"])
        result["new_tokens"].append(one["new_tokens"])
        result["programs"].append(one["program"])
        result["decode_step_ms"].extend(one["step_ms"])
        if progress_every and (i + 1) % progress_every == 0:
            log.info("%d/%d commands", i + 1, len(texts))
    return result


def build_reference(
    name: str,
    *,
    adapter: str,
    base: str | None = None,
    max_new_tokens: int = 64,
    threads: int = 1,
    cache_dir: Path | None = None,
) -> tuple[Callable[[str], dict[str, Any]], dict[str, Any]]:
    """Reference `name` ready to run: `(run(text) -> one command's measurement, details)`."""
    if name not in REFERENCES:
        raise ReferenceError(f"unknown reference {name!r} (known: {', '.join(REFERENCES)})")
    missing = missing_packages(name)
    if missing:
        raise ReferenceError(
            f"--against {name} needs {', '.join(missing)}, not installed here ({INSTALL_HINT})"
        )
    import transformers
    from shadow_edge.bench.measure import rss_mb

    transformers.logging.set_verbosity_error()
    start = time.perf_counter()
    if name == "torch":
        model, tokenizer, details = build_torch(base, adapter, threads)
    else:
        cache = Path(cache_dir) if cache_dir is not None else Path("build") / "bench-cache"
        model, tokenizer, details = build_optimum(base, adapter, threads, cache, int8=name == "optimum-int8")
    details.update(
        threads=threads,
        max_new_tokens=max_new_tokens,
        load_s=round(time.perf_counter() - start, 2),
        rss_mb_after_load=rss_mb(),
        peak_rss_note="this process's own peak; includes loading the base model to build the detached shadow",
    )
    log.info("%s reference ready in %.1f s", name, details["load_s"])
    return command_runner(model, tokenizer, max_new_tokens), details


def run_reference(name: str, texts: Sequence[str], *, warmup: int = 10, **kwargs: Any) -> dict[str, Any]:
    """Build reference `name` and measure it on `texts` in this process; the result is what
    `bench.measure.add_reference` takes. `kwargs`: those of `build_reference`."""
    if not texts:
        raise ReferenceError("no commands to measure")
    from shadow_edge.bench.measure import peak_rss_mb

    run, details = build_reference(name, **kwargs)
    result: dict[str, Any] = measure(run, texts, warmup, max(1, len(texts) // 10))
    result.update(details, peak_rss_mb=peak_rss_mb())
    return result


def serve(name: str, requests: TextIO, replies: TextIO, **kwargs: Any) -> int:
    """The protocol shadow-bench drives a reference process with (one JSON object per line each way):

    - reply `{"ready": true, "details": {...}}` once the model is built (or `{"error": "..."}` and exit);
    - request `{"texts": [...], "warmup": N}` -> reply `measure(...)`'s lists plus `peak_rss_mb` so far;
    - end of input: exit 0.

    So shadow-bench can interleave rounds of commands between the implementations: a machine whose load changes
    during the run then slows every implementation alike, not whichever happened to run at the busy moment."""
    from shadow_edge.bench.measure import peak_rss_mb

    def reply(obj: dict[str, Any]) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    try:
        run, details = build_reference(name, **kwargs)
    except Exception as exc:  # reported to shadow-bench in one line; details in the log
        log.debug("building the reference failed", exc_info=True)
        message = str(exc) if isinstance(exc, ReferenceError) else f"{type(exc).__name__}: {exc}"
        reply({"error": message})
        return EXIT_MISSING if "not installed" in message else EXIT_ERROR
    reply({"ready": True, "details": details})
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            result = measure(run, request.get("texts", []), int(request.get("warmup", 0)))
        except Exception as exc:  # e.g. the model failing mid-run: say so, stop
            log.debug("measuring failed", exc_info=True)
            reply({"error": f"{type(exc).__name__}: {exc}"})
            return EXIT_ERROR
        result["peak_rss_mb"] = peak_rss_mb()
        reply(result)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shadow_edge.bench.references",
        description="Serve one reference implementation to shadow-bench over stdin/stdout (see `serve`).",
    )
    parser.add_argument("name", choices=REFERENCES)
    parser.add_argument("--adapter", required=True, help="the ShadowPEFT adapter directory (peft format)")
    parser.add_argument("--base", default=None, help="base checkpoint directory (default: bundled SmolLM2)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the optimum export is cached")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(prog=f"shadow-bench [{args.name}]")
    # The protocol owns stdout: anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    with replies:
        return serve(
            args.name,
            sys.stdin,
            replies,
            adapter=args.adapter,
            base=args.base,
            max_new_tokens=args.max_new_tokens,
            threads=args.threads,
            cache_dir=args.cache_dir,
        )


if __name__ == "__main__":
    sys.exit(main())
