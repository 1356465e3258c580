"""What `shadow-export` is asked to do: `ExportOptions`, checked before anything is read or loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shadow_edge.export.bundled import default_adapter_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADAPTER = default_adapter_dir()  # the clone's adapters/robot-dog-shadow, else shadow-edge-models'
MODES = ("detached", "attached")
PRECISIONS = ("fp32", "int8", "int4")
INT8_METHODS = ("auto", "dynamic", "nbits")


@dataclass
class ExportOptions:
    """Everything one export run is told; the defaults are `shadow-export` with no arguments."""

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
    task: str = "robot-dog"  # the task checks plug-in (`export.task_checks`): eval data, prompt, scoring
    eval_split: str = "test"
    eval_limit: int | None = 400  # None: the whole split
    agreement_prompts: int = 64
    atol: float = 1e-4
    max_accuracy_loss: float = 0.5
    max_size_ratio: float = 0.30
    threads: int | None = None

    def modes(self) -> list[str]:
        return list(MODES) if self.mode == "both" else [self.mode]

    def manifest_precision(self) -> str:
        return "int8-qdq" if self.precision == "int8" and self.calibration else self.precision

    def check(self) -> None:
        """ValueError for options that contradict each other or name nothing known."""
        if self.mode not in (*MODES, "both"):
            raise ValueError(f"unknown mode {self.mode!r}")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
