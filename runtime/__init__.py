"""On-device runtime: text in, validated action program out.

Depends on numpy, onnxruntime and tokenizers only -- never torch, transformers or the exporter -- so it installs on a
Jetson or an ARM board with `pip install 'shadow-edge[runtime]'`.
"""

from .actions import (
    ActionSpec,
    Command,
    Program,
    ProgramError,
    canonicalize,
    load_spec,
    parse_program,
    programs_equal,
    range_violations,
)
from .prompt import SYSTEM_PROMPT
from .scoring import program_matches, score_programs

__all__ = [
    "SYSTEM_PROMPT",
    "ActionSpec",
    "Command",
    "Program",
    "ProgramError",
    "canonicalize",
    "load_spec",
    "parse_program",
    "program_matches",
    "programs_equal",
    "range_violations",
    "score_programs",
]
