"""`shadow-export` from top to bottom: check inputs, load, export, validate, quantize, validate again, write.

For each mode (detached / attached):

1. the export graph (`decoder_graph.graph_for`), with the action-vocabulary head when asked;
2. FP32 ONNX (`convert.export_decoder_onnx`), validated against the torch graph at untraced shapes and through a
   cached greedy decode (`validate_decoder.validate_decoder`);
3. for causal LMs, program-level checks with the runtime's own constrained decoder (`validate_programs`): ONNX vs
   PyTorch programs on real prompts, restricted head vs full head, and command accuracy on a labelled split;
4. quantization (`quantize.quantize_decoder`) and the same accuracy measurement on the quantized file: INT8 must not
   lose more than `max_accuracy_loss` points against FP32 and must be at most `max_size_ratio` of its size. With
   `int8_method="auto"` the CPU INT8 export tries dynamic INT8 first (MatMulInteger, per-channel weights) and
   falls back to 8-bit blockwise MatMulNBits when dynamic INT8 misses the accuracy bar -- what happens on
   SmolLM2, whose down_proj activations have outlier channels (see `quantize`);
5. tokenizer.json (+ chat template), report.json and manifest.json (written last, listing every file's sha256).

Everything is written into a staging directory that replaces OUT_DIR only when every check passed
(`output_dir.StagedDir`); a failed export raises `ExportFailed` carrying the report, and leaves OUT_DIR as it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from shadow_edge.export import checkpoint
from shadow_edge.export.base_model import resolve_base
from shadow_edge.export.output_dir import StagedDir
from shadow_edge.runtime.actions import SPEC_PATH, load_spec
from shadow_edge.runtime.manifest import CacheSpec, file_sha256, write_manifest
from shadow_edge.runtime.prompt import SYSTEM_PROMPT, chat_messages

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADAPTER = REPO_ROOT / "adapters" / "robot-dog-shadow"
MODES = ("detached", "attached")
INT8_METHODS = ("auto", "dynamic", "nbits")
PROMPT_SENTINEL = "\u2063SHADOW_EDGE_COMMAND\u2063"  # split the chat template around the command text
TOOLS = ("torch", "transformers", "peft", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers")


class ExportFailed(RuntimeError):
    """The export ran but did not pass its validation; `report` says what failed."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ExportOptions:
    base: str | None = None  # HF checkpoint dir or GGUF file; None: bundled SmolLM2
    adapter: str | None = None  # None: the bundled robot-dog adapter
    mode: str = "detached"  # detached | attached | both
    precision: str = "fp32"  # fp32 | int8 | int4
    calibration: str | None = None  # with int8: static QDQ INT8 (TensorRT) calibrated on this set
    shadow_model: str | None = None  # official checkpoints trained with an explicit shadow: its config dir
    out_dir: str = "build/robot-dog"
    action_head: bool = True
    int8_method: str = "auto"
    shadow_logits: bool = False
    optimum: bool = False  # detached: also an optimum-onnx export + genai_config.json in OUT_DIR/optimum
    eval_split: str = "test"
    eval_limit: int | None = 400  # None: the whole split
    agreement_prompts: int = 64
    atol: float = 1e-4
    max_accuracy_loss: float = 0.5
    max_size_ratio: float = 0.30
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def modes(self) -> list[str]:
        return list(MODES) if self.mode == "both" else [self.mode]

    def manifest_precision(self) -> str:
        return "int8-qdq" if self.precision == "int8" and self.calibration else self.precision


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["shadow-edge"] = metadata.version("shadow-edge")
    return versions


def strided(examples: list[dict], n: int | None) -> list[dict]:
    """Every k-th example, so a shortened evaluation still covers every command and language."""
    if n is None or n <= 0 or n >= len(examples):
        return list(examples)
    step = len(examples) / n
    return [examples[int(i * step)] for i in range(n)]


# -- inputs ----------------------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    base_dir: Path
    adapter: checkpoint.AdapterInfo
    base: checkpoint.BaseInfo
    default_base: bool


def check_inputs(options: ExportOptions) -> Inputs:
    """Every input problem, before any model is loaded (CheckpointError naming the file)."""
    if options.mode not in (*MODES, "both"):
        raise ValueError(f"unknown mode {options.mode!r}")
    if options.precision not in ("fp32", "int8", "int4"):
        raise ValueError(f"unknown precision {options.precision!r}")
    if options.int8_method not in INT8_METHODS:
        raise ValueError(f"unknown int8 method {options.int8_method!r}; expected one of {INT8_METHODS}")
    if options.optimum and options.mode == "attached":
        raise ValueError(
            "--optimum writes the detached shadow for optimum / onnxruntime-genai: use --mode detached or both"
        )
    if options.calibration and options.precision != "int8":
        raise ValueError("--calibration selects static INT8 (QDQ, for TensorRT): use it with --int8")
    adapter = checkpoint.check_adapter(options.adapter or DEFAULT_ADAPTER)
    base_dir = resolve_base(options.base)
    base = checkpoint.check_base(base_dir)
    if adapter.dialect == "peft":
        checkpoint.check_pair(base, adapter)
    else:
        from shadow_edge.export.official import check_official_pair, read_official_checkpoint

        check_official_pair(read_official_checkpoint(adapter.directory), base.config)
    if options.calibration:
        from shadow_edge.calibration.decode_steps import load_calibration_texts

        load_calibration_texts(options.calibration)  # a bad set fails now, not after the export
    return Inputs(base_dir, adapter, base, options.base is None)


def load_model(inputs: Inputs, shadow_model: str | None = None):
    """`(model, tokenizer)`: the base (of the adapter's task) with the adapter attached, float32, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(inputs.base_dir)
    if inputs.adapter.dialect == "official":
        from shadow_edge.export.official import load_official_model

        # a path, not a loaded model: the loader picks the causal-LM or classifier class from the saved heads
        model = load_official_model(inputs.base_dir, inputs.adapter.directory, shadow_model=shadow_model,
                                    dtype=torch.float32)  # fmt: skip
    else:
        from peft import PeftModel

        auto = (
            AutoModelForSequenceClassification if inputs.adapter.task == "seq_cls" else AutoModelForCausalLM
        )
        base = auto.from_pretrained(inputs.base_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(inputs.adapter.directory))
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer


# -- tokenizer and prompt --------------------------------------------------------------------------------------------


def prompt_template(tokenizer, system_prompt: str = SYSTEM_PROMPT) -> tuple[str, str]:
    """(prefix, suffix) of the chat prompt around the command text; by default the one the model was trained with."""
    if not getattr(tokenizer, "chat_template", None):
        return "", ""
    rendered = tokenizer.apply_chat_template(
        chat_messages(PROMPT_SENTINEL, system_prompt), tokenize=False, add_generation_prompt=True
    )
    if rendered.count(PROMPT_SENTINEL) != 1:
        raise ValueError(
            "the chat template does not place the user's text exactly once; cannot split the prompt"
        )
    prefix, suffix = rendered.split(PROMPT_SENTINEL)
    return prefix, suffix


def write_tokenizer(tokenizer, directory: Path) -> list[str]:
    """tokenizer.json (the `tokenizers` file the runtime loads) and the chat template, if any."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            "the base's tokenizer has no fast (tokenizers) version; the runtime needs tokenizer.json"
        )
    backend.save(str(directory / "tokenizer.json"))
    files = ["tokenizer.json"]
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str):
        (directory / "chat_template.jinja").write_text(template, encoding="utf-8")
        files.append("chat_template.jinja")
    return files


def special_tokens(tokenizer) -> dict[str, int | None]:
    from shadow_edge.tasks.robot_dog.task import end_of_turn_id

    eos = end_of_turn_id(tokenizer)
    pad = tokenizer.pad_token_id
    return {"bos": tokenizer.bos_token_id, "eos": eos, "pad": eos if pad is None else int(pad)}


# -- one mode --------------------------------------------------------------------------------------------------------


class _Stages:
    """A progress bar over the stages of one mode's export, plus the time each took."""

    NAMES = ("graph", "onnx", "validate", "programs", "quantize", "write")

    def __init__(self, mode: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(self.NAMES), desc=f"export {mode}", unit="stage")
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._start = time.perf_counter()

    def start(self, name: str) -> None:
        self._finish()
        self._name, self._start = name, time.perf_counter()
        self.bar.set_postfix_str(name)

    def _finish(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = round(time.perf_counter() - self._start, 2)
            self.bar.update(1)

    def close(self) -> None:
        self._finish()
        self._name = None
        self.bar.close()


def _task(model) -> str:
    config = getattr(model, "peft_config", None)
    if isinstance(config, dict):
        task = next(iter(config.values())).task_type
        return "seq_cls" if str(getattr(task, "value", task)).upper() == "SEQ_CLS" else "causal_lm"
    parts = model.shadow_parts()  # official dialect
    return "seq_cls" if str(getattr(parts.task, "value", parts.task)).upper() == "SEQ_CLS" else "causal_lm"


def export_mode(
    model, tokenizer, mode: str, out: Path, options: ExportOptions, inputs: Inputs, common: dict[str, Any]
) -> dict[str, Any]:
    """Export one mode into `out` (which exists and holds the tokenizer files); return its report."""
    from shadow_edge.export.convert import export_decoder_onnx
    from shadow_edge.export.decoder_graph import graph_for
    from shadow_edge.export.quantize import model_files
    from shadow_edge.export.validate_decoder import validate_decoder
    from shadow_edge.runtime.grammar import action_vocabulary
    from tokenizers import Tokenizer

    started = time.perf_counter()
    stages = _Stages(mode)
    task = _task(model)
    eos = common["special_tokens"]["eos"]
    rt_tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    report: dict[str, Any] = {
        "mode": mode,
        "task": task,
        "precision": options.manifest_precision(),
        "checks": {},
    }
    checks = report["checks"]
    work = out / ".work"
    work.mkdir()
    try:
        stages.start("graph")
        head_ids = (
            action_vocabulary(rt_tokenizer, eos) if options.action_head and task == "causal_lm" else None
        )
        graph = graph_for(model, mode, head_ids, options.shadow_logits)
        head_size = len(head_ids) if head_ids is not None else int(graph.vocab_size)

        stages.start("onnx")
        fp32_path = out / "decoder.onnx" if options.precision == "fp32" else work / "fp32" / "decoder.onnx"
        report["onnx"] = export_decoder_onnx(graph, fp32_path)

        stages.start("validate")
        validation = validate_decoder(fp32_path, graph, atol=options.atol, threads=options.threads or 0)
        report["validation"] = validation
        checks["fp32_logits"] = {
            "passed": validation["passed"],
            "max_abs_logit_diff": validation["max_abs_logit_diff"],
            "atol": options.atol,
            "greedy_tokens_match": validation["greedy_tokens_match"],
        }

        stages.start("programs")
        caches = [CacheSpec(**c) for c in graph.caches]
        programs = None
        if task == "causal_lm":
            programs = _program_checks(
                model,
                graph,
                fp32_path,
                rt_tokenizer,
                tokenizer,
                caches,
                head_ids,
                head_size,
                mode,
                options,
                common,
            )
            report["programs"] = programs["report"]
            checks.update(programs["checks"])

        stages.start("quantize")
        if options.precision != "fp32":
            chosen = _quantize(
                fp32_path, work, caches, head_ids, head_size, rt_tokenizer, programs, options, common, report
            )
            for file in model_files(chosen):
                shutil.move(str(file), out / file.name)
        shutil.rmtree(work)
        optimum_files = []
        if options.optimum and mode == "detached" and task == "causal_lm":
            optimum_files = _optimum(model, tokenizer, out, programs, common, checks, report)

        stages.start("write")
        decoder_files = [f.name for f in model_files(out / "decoder.onnx")]
        report["files"] = {
            name: (out / name).stat().st_size for name in [*decoder_files, *common["tokenizer_files"]]
        }
        report["decoder_size_bytes"] = sum((out / name).stat().st_size for name in decoder_files)
        report["passed"] = all(c["passed"] for c in checks.values())
        stages.close()
        report["stage_seconds"] = stages.seconds
        report["export_seconds"] = round(time.perf_counter() - started, 2)
        (out / "report.json").write_text(
            json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        fields = {
            "mode": mode,
            "precision": options.manifest_precision(),
            "task": task,
            "decoder": "decoder.onnx",
            "architecture": _architecture(inputs, graph),
            "head": {
                "kind": "action" if head_ids is not None else "full",
                "size": head_size,
                **({"token_ids": head_ids} if head_ids is not None else {}),
            },
            "special_tokens": common["special_tokens"],
            "prompt": common["prompt"],
            "action_language": common["action_language"],
            "tools": common["tools"],
            "source": common["source"],
            "quantization": report.get("quantization", {}).get("chosen"),
        }
        write_manifest(
            out, fields, [*decoder_files, *common["tokenizer_files"], *optimum_files, "report.json"]
        )
        return report
    finally:
        stages.bar.close()
        shutil.rmtree(work, ignore_errors=True)


def _optimum(model, tokenizer, out: Path, programs, common, checks, report) -> list[str]:
    """The detached shadow as optimum / onnxruntime-genai expect it, in OUT_DIR/optimum; its files for the manifest."""
    from shadow_edge.export.optimum_detached import export_optimum_detached
    from shadow_edge.tasks.robot_dog.task import encode_prompt

    texts = programs["texts"][:: max(1, len(programs["texts"]) // 8)][:8] if programs else ["sit down"]
    prompts = [list(encode_prompt(tokenizer, t)) for t in texts]
    special = common["special_tokens"]
    result = export_optimum_detached(
        model, tokenizer, out / "optimum", prompts, special["eos"], special["pad"]
    )
    report["optimum"] = result
    checks["optimum_export"] = {"passed": result["passed"], "greedy_tokens_equal": result["greedy_tokens_equal"],
                                "n": result["n"]}  # fmt: skip
    return [f"optimum/{name}" for name in result["files"]]


def _architecture(inputs: Inputs, graph) -> dict[str, Any]:
    config = inputs.base.config
    return {
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "num_attention_heads": config.get("num_attention_heads"),
        "num_key_value_heads": config.get("num_key_value_heads", config.get("num_attention_heads")),
        "vocab_size": config.get("vocab_size"),
        "caches": graph.caches,
    }


def _program_checks(
    model, graph, fp32_path, rt_tokenizer, hf_tokenizer, caches, head_ids, head_size, mode, options, common
) -> dict[str, Any]:
    """ONNX vs PyTorch programs, restricted vs full head, prompt tokenization, FP32 command accuracy."""
    from shadow_edge.export.decoder_graph import graph_for
    from shadow_edge.export.validate_programs import (
        TorchDecoderSession,
        command_accuracy,
        generate_programs,
        make_generator,
        program_agreement,
    )
    from shadow_edge.runtime.session import create_session
    from shadow_edge.tasks.robot_dog.generator import load_split
    from shadow_edge.tasks.robot_dog.task import encode_prompt

    special, prompt = common["special_tokens"], common["prompt"]

    def generator(session, ids, size):
        return make_generator(
            session,
            rt_tokenizer,
            caches,
            ids,
            size,
            special["eos"],
            special["pad"],
            prompt["prefix"],
            prompt["suffix"],
        )

    examples = strided(load_split(options.eval_split), options.eval_limit)
    texts = [e["text"] for e in examples]
    agree_idx = strided(list(range(len(texts))), options.agreement_prompts)
    agree_texts = [texts[i] for i in agree_idx]
    checks: dict[str, Any] = {}

    onnx_gen = generator(
        create_session(fp32_path, providers="cpu", threads=options.threads), head_ids, head_size
    )
    mismatched = [t for t in agree_texts if onnx_gen.encode_prompt(t) != list(encode_prompt(hf_tokenizer, t))]
    checks["prompt_tokenization"] = {
        "passed": not mismatched,
        "n": len(agree_texts),
        "mismatched": mismatched[:5],
    }
    fp32_programs = generate_programs(onnx_gen, texts, f"{mode} fp32 onnx")
    torch_programs = generate_programs(
        generator(TorchDecoderSession(graph), head_ids, head_size), agree_texts, f"{mode} torch"
    )
    agreement = program_agreement(torch_programs, [fp32_programs[i] for i in agree_idx], agree_texts)
    checks["onnx_vs_torch_programs"] = {"passed": agreement["rate"] == 1.0, **agreement}
    report: dict[str, Any] = {"eval_split": options.eval_split, "eval_examples": len(examples)}
    if head_ids is not None:
        full = graph_for(model, mode, None, options.shadow_logits)
        full_programs = generate_programs(
            generator(TorchDecoderSession(full), None, int(full.vocab_size)), agree_texts, f"{mode} full head"
        )
        agreement = program_agreement(full_programs, torch_programs, agree_texts)
        checks["action_head_vs_full_head"] = {"passed": agreement["rate"] == 1.0, **agreement}
    report["accuracy"] = {"fp32": command_accuracy(fp32_programs, examples)}
    log.info(
        "%s fp32: command accuracy %.4f on %d examples",
        mode,
        report["accuracy"]["fp32"]["accuracy"],
        len(texts),
    )
    return {
        "report": report,
        "checks": checks,
        "examples": examples,
        "texts": texts,
        "fp32_programs": fp32_programs,
        "generator": generator,
    }


def _quantize(
    fp32_path, work, caches, head_ids, head_size, rt_tokenizer, programs, options, common, report
) -> Path:
    """Quantize (trying INT8 kernels in order for `auto`); measure each attempt; return the chosen file."""
    from shadow_edge.export.quantize import quantize_decoder
    from shadow_edge.export.validate_programs import (
        accuracy_loss_points,
        command_accuracy,
        generate_programs,
        program_agreement,
    )
    from shadow_edge.runtime.session import create_session

    precision = options.manifest_precision()
    if precision == "int8":
        methods = ["dynamic", "nbits"] if options.int8_method == "auto" else [options.int8_method]
    else:
        methods = [None]
    reader = (
        _calibration_reader(fp32_path, caches, head_ids, rt_tokenizer, options, common)
        if precision == "int8-qdq"
        else None
    )
    attempts = []
    chosen = work
    for method in methods:
        path = work / (method or precision) / "decoder.onnx"
        kwargs = {"int8_method": method} if method else {}
        q = quantize_decoder(fp32_path, path, precision, reader, **kwargs)
        attempt: dict[str, Any] = {"method": q["method"], "int8_method": method, "quantize": q}
        size_ok = precision == "int4" or q["size_ratio"] <= options.max_size_ratio
        attempt["size_check"] = {
            "passed": size_ok,
            "size_ratio": q["size_ratio"],
            "max": options.max_size_ratio,
        }
        accuracy_ok = True
        if programs is not None:
            session = create_session(path, providers="cpu", threads=options.threads)
            generated = generate_programs(
                programs["generator"](session, head_ids, head_size), programs["texts"], f"{precision} onnx"
            )
            accuracy = command_accuracy(generated, programs["examples"])
            fp32 = report["programs"]["accuracy"]["fp32"]
            loss = accuracy_loss_points(fp32, accuracy)
            agreement = program_agreement(programs["fp32_programs"], generated, programs["texts"])
            accuracy_ok = loss <= options.max_accuracy_loss
            attempt["accuracy"] = accuracy
            attempt["accuracy_check"] = {
                "passed": accuracy_ok,
                "loss_points": loss,
                "max_loss_points": options.max_accuracy_loss,
                "fp32_accuracy": fp32["accuracy"],
                "accuracy": accuracy["accuracy"],
            }
            attempt["agreement_with_fp32"] = agreement
            log.info("%s (%s): accuracy %.4f (FP32 %.4f, loss %.2f points), %.1f%% of FP32 size", precision,
                     q["method"], accuracy["accuracy"], fp32["accuracy"], loss, 100 * q["size_ratio"])  # fmt: skip
        attempts.append(attempt)
        chosen = path
        if size_ok and accuracy_ok:
            break
        if method != methods[-1]:
            log.warning("%s with %s missed the bar; trying the next INT8 kernel", precision, q["method"])
    final = attempts[-1]
    report["quantization"] = {
        "attempts": attempts,
        "chosen": {"precision": precision, "method": final["quantize"]["method"]},
    }
    report["checks"]["quantized_size"] = final["size_check"]
    if "accuracy_check" in final:
        report["checks"]["quantized_accuracy"] = final["accuracy_check"]
        report["programs"]["accuracy"][precision] = final["accuracy"]
    return chosen


def _calibration_reader(fp32_path, caches, head_ids, rt_tokenizer, options, common):
    from shadow_edge.calibration.decode_steps import (
        DecodeStepReader,
        calibration_prompts,
        load_calibration_texts,
    )

    texts = load_calibration_texts(options.calibration)
    prompt = common["prompt"]
    prompts = calibration_prompts(rt_tokenizer, prompt["prefix"], prompt["suffix"], texts)
    return DecodeStepReader(
        fp32_path, prompts, caches, common["special_tokens"]["eos"], head_ids, threads=options.threads
    )


# -- the whole export ------------------------------------------------------------------------------------------------


def export(options: ExportOptions) -> dict[str, Any]:
    """Run the export described by `options`; return the report, or raise (OUT_DIR untouched on any failure).

    Raises CheckpointError / BaseModelError / ValueError for bad inputs (before any work), OutputDirError when
    OUT_DIR holds someone's files, ExportFailed when the export did not pass validation.
    """
    started = time.perf_counter()
    inputs = check_inputs(options)
    staged = StagedDir(options.out_dir)
    with staged as stage:
        model, tokenizer = load_model(inputs, options.shadow_model)
        prefix, suffix = prompt_template(tokenizer)
        common: dict[str, Any] = {
            "special_tokens": special_tokens(tokenizer),
            "prompt": {"prefix": prefix, "suffix": suffix},
            "action_language": {"version": load_spec().version, "sha256": file_sha256(SPEC_PATH)},
            "tools": tool_versions(),
            "source": {
                "base": None if inputs.default_base else str(Path(options.base).absolute()),
                "base_dir": str(inputs.base_dir.absolute()),
                "adapter": str(inputs.adapter.directory.absolute()),
                "dialect": inputs.adapter.dialect,
            },
        }
        reports = {}
        for mode in options.modes():
            out = stage / mode if options.mode == "both" else stage
            out.mkdir(exist_ok=True)
            common["tokenizer_files"] = write_tokenizer(tokenizer, out)
            reports[mode] = export_mode(model, tokenizer, mode, out, options, inputs, common)
        result = {
            "out_dir": str(Path(options.out_dir).absolute()),
            "options": {k: v for k, v in asdict(options).items() if k != "extra"},
            "passed": all(r["passed"] for r in reports.values()),
            "export_seconds": round(time.perf_counter() - started, 2),
            "modes": {m: _summary(r) for m, r in reports.items()},
        }
        if options.mode == "both":
            (stage / "report.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        if not result["passed"]:
            failed = [
                f"{m}: {name}"
                for m, r in reports.items()
                for name, c in r["checks"].items()
                if not c["passed"]
            ]
            raise ExportFailed(f"validation failed ({'; '.join(failed)})", {**result, "reports": reports})
        committed = staged.commit()
    result["out_dir"] = str(committed)
    return result


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures a person looks at first: sizes, accuracy per precision, failed checks, time."""
    accuracy = report.get("programs", {}).get("accuracy", {})
    return {
        "precision": report["precision"],
        "passed": report["passed"],
        "failed_checks": [name for name, c in report["checks"].items() if not c["passed"]],
        "decoder_size_bytes": report.get("decoder_size_bytes"),
        "max_abs_logit_diff": report["validation"]["max_abs_logit_diff"],
        "command_accuracy": {p: a["accuracy"] for p, a in accuracy.items()},
        "export_seconds": report.get("export_seconds"),
    }
