"""What `shadow-export` is asked to do: `ExportOptions`, checked before anything is read or loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shadow_edge.export.bundled import default_adapter_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADAPTER = default_adapter_dir()  # the clone's adapters/robot-dog-shadow, else shadow-edge-models'
MODES = ("detached", "attached")  # of a ShadowPEFT model; "both" exports the two
CHAT_MODE = "chat"  # the frozen base alone, full vocabulary, for answering in text (export.chat)
PRECISIONS = ("fp32", "int8", "int4")
INT8_METHODS = ("auto", "dynamic", "nbits")


@dataclass
class ExportOptions:
    """Everything one export run is told; the defaults are `shadow-export` with no arguments."""

    base: str | None = None  # HF checkpoint dir or GGUF file; None: bundled SmolLM2
    adapter: str | None = None  # None: the bundled robot-dog adapter
    mode: str = "detached"  # detached | attached | both | chat
    precision: str = "fp32"  # fp32 | int8 | int4
    calibration: str | None = None  # with int8: static QDQ INT8 (TensorRT) calibrated on this set
    shadow_model: str | None = None  # official checkpoints trained with an explicit shadow: its config dir
    out_dir: str = "build/robot-dog"
    action_head: bool = True
    int8_method: str = "auto"
    shadow_logits: bool = False
    optimum: bool = False  # detached: also an optimum-onnx export + genai_config.json in OUT_DIR/optimum
    task: str = "robot-dog"  # the task checks plug-in (`export.task_checks`): eval data, prompt, scoring
    eval_split: str = "test"
    eval_limit: int | None = 400  # None: the whole split
    agreement_prompts: int = 64
    atol: float = 1e-4
    rtol: float = 1e-5  # of the largest |logit|: FP32 ONNX vs PyTorch may differ by atol + rtol * scale
    max_accuracy_loss: float = 0.5
    max_size_ratio: float = 0.30
    threads: int | None = None
    # --mode chat
    system_prompt: str | None = (
        None  # the chat prompt's system message; None: the chat template's own default
    )
    chat_prompts: int = 16  # prompts the chat export is validated on (the task's `prompts`)
    chat_new_tokens: int = 16  # tokens of each greedy answer compared with PyTorch
    chat_min_top1: float = 0.90  # INT8: least top-1 agreement with PyTorch along PyTorch's answers

    def modes(self) -> list[str]:
        return list(MODES) if self.mode == "both" else [self.mode]

    def manifest_precision(self) -> str:
        return "int8-qdq" if self.precision == "int8" and self.calibration else self.precision

    def check(self) -> None:
        """ValueError for options that contradict each other or name nothing known."""
        if self.mode not in (*MODES, "both", CHAT_MODE):
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == CHAT_MODE:
            self._check_chat()
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}")
        if self.int8_method not in INT8_METHODS:
            raise ValueError(f"unknown int8 method {self.int8_method!r}; expected one of {INT8_METHODS}")
        if self.optimum and self.mode == "attached":
            raise ValueError(
                "--optimum writes the detached shadow for optimum / onnxruntime-genai: use --mode detached or both"
            )
        if self.calibration and self.precision != "int8":
            raise ValueError("--calibration selects static INT8 (QDQ, for TensorRT): use it with --int8")

    def _check_chat(self) -> None:
        if self.adapter or self.shadow_model:
            raise ValueError("--mode chat exports the base alone: --adapter and --shadow-model do not apply")
        if self.precision not in ("fp32", "int8") or self.calibration:
            raise ValueError(
                "--mode chat is exported as FP32 or INT8 (8-bit MatMulNBits): use --fp32 or --int8"
            )
        if self.optimum:
            raise ValueError("--optimum writes the detached shadow: it does not apply to --mode chat")
        if self.chat_prompts < 1 or self.chat_new_tokens < 1 or not 0.0 <= self.chat_min_top1 <= 1.0:
            raise ValueError(
                "--mode chat needs chat_prompts >= 1, chat_new_tokens >= 1, 0 <= chat_min_top1 <= 1"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
