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
from .commander import Commander, CommandResult, ModelLoadError
from .constrained import TokenConstraint
from .generate import GenerationError, GenerationResult, Generator
from .grammar import ProgramGrammar, action_vocabulary, token_texts
from .prompt import SYSTEM_PROMPT
from .scoring import program_matches, score_programs
from .session import SessionError, choose_providers, create_decoder_session, create_session
from .text_input import model_input, sanitize

__all__ = [
    "SYSTEM_PROMPT",
    "ActionSpec",
    "Command",
    "CommandResult",
    "Commander",
    "GenerationError",
    "GenerationResult",
    "Generator",
    "ModelLoadError",
    "Program",
    "ProgramError",
    "ProgramGrammar",
    "SessionError",
    "TokenConstraint",
    "action_vocabulary",
    "canonicalize",
    "choose_providers",
    "create_decoder_session",
    "create_session",
    "load_spec",
    "parse_program",
    "program_matches",
    "programs_equal",
    "range_violations",
    "model_input",
    "sanitize",
    "score_programs",
    "token_texts",
]
