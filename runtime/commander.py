"""Text in, routed and safety-checked action program out: the runtime's front door.

`Commander(model_dir).run(text)` sanitises the text, decodes a program with the exported model (constrained, so it
always parses), and decides what happens to it:

- `robot`: the safety layer's `Plan` says whether it is executed (`accepted`) and why not;
- `remote`: the model said `remote`, or its confidence is below `min_confidence`, or the program's numbers are not
  the command's (`runtime.arguments`: a miscopied argument): the text goes to the pluggable cloud
  hook (`cloud(text) -> str | None`). Without a hook nothing is executed. A hook's answer that is a robot program goes
  through the same safety layer (and may then be executed); any other answer is returned as `remote_answer`;
- `reject`: the model refused the request, or the input itself was refused (empty, too long, binary), or the model
  failed (`error` set). Nothing is executed.

Speech: `run(text, spoken=True)` gates a recogniser's transcript with the export's speech gate. When that gate
holds back a program the safety layer would execute, the recogniser's next-best transcripts (`alternatives`) are
read too (where the speech gate was calibrated so: `next_best` in routing.json), and
`runtime.alternatives.pick_alternative` may choose one to execute instead (`alternative` says which,
`text` is that transcript); otherwise the first transcript's result stands (the cloud gets the first transcript).

Spoken numbers are written as digits before the model reads the text (`runtime.normalize`, as in training), and
`model_text` shows it. Input sanitation (no silent changes to meaning): text over `max_chars` is refused ("command too long"), not cut;
control and invisible format characters are replaced by spaces and whitespace collapsed, and the result says so in
`reason` and `model_text`; text that is mostly such characters (binary data) is refused. Prompt injection is not
filtered: it goes to the model like any text, and the constrained output plus the safety layer bound what can happen.

Thread-safety: one lock serialises decoding (the KV caches and onnxruntime bindings are per call, not per thread), so
concurrent `run` calls are safe and run one after another; the cloud hook is called outside the lock.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .actions import ROUTE_ROBOT, SPEC_PATH, ActionSpec, ProgramError, load_spec, parse_program
from .alternatives import MAX_ALTERNATIVES, Reading, pick_alternative
from .arguments import DISAGREE_REASON, unsaid_arguments
from .command_result import CommandResult
from .generate import DEFAULT_MAX_NEW_TOKENS, GenerationError, GenerationResult, Generator, TokenizerError
from .grammar import ProgramGrammar
from .manifest import Manifest, ManifestError, file_sha256, load_manifest
from .routing import ConfidenceGate, RoutingError, load_gate
from .safety import ROUTE_REJECT, ROUTE_REMOTE, SafetyConfig, plan_program
from .session import SessionError, create_decoder_session
from .text_input import DEFAULT_MAX_CHARS, InputRefused, read_command

log = logging.getLogger(__name__)

# hook(text) -> the remote model's answer; a hook with a `spoken` parameter is told when the text was heard
CloudHook = Callable[..., "str | None"]

DEFAULT_MIN_CONFIDENCE = 0.5


class ModelLoadError(RuntimeError):
    """The export directory cannot be run: manifest, files, tokenizer or ONNX session. The message says which."""


class Commander:
    """The exported model behind a lock, with sanitation, routing and the safety layer (module docstring).

    `Commander(model_dir)` verifies the export directory (`load_manifest`: every file's sha256) before any session
    is created and raises `ModelLoadError` with one clear line if it cannot run.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        min_confidence: float | None = None,
        cloud: CloudHook | None = None,
        safety_config: SafetyConfig | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        io_binding: bool | None = None,
        prefix_cache: bool = True,
        warmup: bool = True,
    ) -> None:
        spec = load_spec()
        try:
            manifest = load_manifest(model_dir)
            _check_manifest(manifest, spec)
            session = create_decoder_session(manifest, providers=providers, threads=threads)
            generator = Generator.from_manifest(
                manifest,
                session,
                grammar=ProgramGrammar(spec),
                io_binding=io_binding,
                prefix_cache=prefix_cache,
                max_new_tokens=max_new_tokens,
            )
            # the export's calibrated gate (routing.json) unless a threshold is given
            if min_confidence is None:
                gate, speech_gate = load_gate(model_dir), load_gate(model_dir, spoken=True)
            else:
                gate = speech_gate = _argument_gate(min_confidence)
        except (
            ManifestError,
            SessionError,
            TokenizerError,
            GenerationError,
            RoutingError,
            ValueError,
        ) as exc:
            raise ModelLoadError(str(exc)) from None
        self.manifest: Manifest | None = manifest
        self._setup(generator, spec, gate, speech_gate, cloud, safety_config, max_chars, warmup)

    @classmethod
    def from_generator(
        cls,
        generator: Generator,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        cloud: CloudHook | None = None,
        safety_config: SafetyConfig | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        warmup: bool = False,
    ) -> Commander:
        """A commander around an existing generator (tests, or a session built by hand)."""
        self = cls.__new__(cls)
        self.manifest = None
        gate = _argument_gate(min_confidence)
        self._setup(generator, load_spec(), gate, gate, cloud, safety_config, max_chars, warmup)
        return self

    def _setup(
        self,
        generator: Generator,
        spec: ActionSpec,
        gate: ConfidenceGate,
        speech_gate: ConfidenceGate,
        cloud: CloudHook | None,
        safety_config: SafetyConfig | None,
        max_chars: int,
        warmup: bool,
    ) -> None:
        self.generator = generator
        self.spec = spec
        self.gate = gate
        self.speech_gate = speech_gate
        self.cloud = cloud
        self._cloud_takes_spoken = cloud is not None and _takes_spoken(cloud)
        self.safety_config = safety_config or SafetyConfig()
        self.max_chars = int(max_chars)
        self._lock = threading.Lock()
        if warmup:
            generator.constraint.warmup()

    def info(self) -> dict[str, Any]:
        """What runs: mode, precision, providers, head size, io binding."""
        session = self.generator.session
        providers = session.get_providers() if hasattr(session, "get_providers") else []
        manifest = self.manifest
        return {
            "model_dir": None if manifest is None else str(manifest.directory),
            "mode": None if manifest is None else manifest.mode,
            "precision": None if manifest is None else manifest.precision,
            "providers": list(providers),
            "head_size": self.generator.head_size,
            "confidence_gate": self.gate.to_json(),
            "speech_confidence_gate": self.speech_gate.to_json(),
            "io_binding": self.generator.io_binding,
        }

    # -- one command -------------------------------------------------------------------------------------------------

    def run(self, text: Any, spoken: bool = False, alternatives: Sequence[Any] = ()) -> CommandResult:
        """Decide what to do with one command; never raises for any input (a refusal says why). `spoken`: the text
        is a speech recogniser's transcript, gated by the speech gate; `alternatives`: the recogniser's next-best
        transcripts, tried when the first one's program is held back (module docstring)."""
        start = time.perf_counter()
        shown = _shown(text)
        try:
            cleaned, model_text, removed = read_command(text, self.max_chars)
        except InputRefused as refused:
            return self._result(start, shown, route=ROUTE_REJECT, reason=str(refused))
        try:
            generation = self._generate(model_text)
        except Exception as exc:  # GenerationError, or a bug: either way nothing may move
            log.error("decoding failed: %s", exc, exc_info=not isinstance(exc, GenerationError))
            return self._result(
                start, shown, route=ROUTE_REJECT, reason="model error: nothing executed", error=_describe(exc)
            )
        if spoken and alternatives and self.speech_gate.next_best:
            chosen = self._alternative(start, generation, alternatives)
            if chosen is not None:
                return chosen
        return self._decide(start, shown, cleaned, model_text, removed, generation, spoken)

    def _alternative(
        self, start: float, generation: GenerationResult, alternatives: Sequence[Any]
    ) -> CommandResult | None:
        """The result of the next-best transcript that `pick_alternative` chooses, when the first is held back."""
        first = self._reading(generation)
        if not first.executable or self.speech_gate.passes(generation):
            return None  # nothing to replace: spare the decodes
        decoded = [self._decode_alternative(text) for text in alternatives[:MAX_ALTERNATIVES]]
        generations = [generation, *(d[1] if d is not None else None for d in decoded)]
        number = pick_alternative(
            first,
            [self._reading(g) for g in generations[1:]],
            lambda i: generations[i] is not None and self.speech_gate.passes(generations[i]),
        )
        if number is None:
            return None
        (cleaned, model_text, removed), chosen = decoded[number - 1]  # it passed the gate: it was decoded
        text = _shown(alternatives[number - 1])
        result = self._decide(start, text, cleaned, model_text, removed, chosen, spoken=True)
        why = f"{result.reason}; the first transcript was held back: executed next-best transcript #{number}"
        return replace(result, alternative=number, reason=why)

    def _decode_alternative(self, text: Any) -> tuple[tuple[str, str, int], GenerationResult] | None:
        """`read_command` and the decode of one next-best transcript; None when it is refused or fails (unused)."""
        try:
            read = read_command(text, self.max_chars)
            return read, self._generate(read[1])
        except InputRefused:
            return None
        except Exception as exc:  # as in run(): this alternative is not used
            log.error(
                "decoding an alternative failed: %s", exc, exc_info=not isinstance(exc, GenerationError)
            )
            return None

    def _reading(self, generation: GenerationResult | None) -> Reading:
        if generation is None or not generation.complete:
            return Reading("", False)
        plan = plan_program(generation.text, self.spec, self.safety_config)
        return Reading(plan.program, plan.route == ROUTE_ROBOT and plan.accepted)

    def run_batch(self, texts: Sequence[Any]) -> list[CommandResult]:
        """`run` for several commands, decoded as one batch (evaluation throughput); latency is the batch's."""
        start = time.perf_counter()
        results: list[CommandResult | None] = [None] * len(texts)
        todo: list[tuple[int, str, str, int]] = []
        for i, text in enumerate(texts):
            try:
                todo.append((i, *read_command(text, self.max_chars)))
            except InputRefused as refused:
                results[i] = self._result(start, _shown(text), route=ROUTE_REJECT, reason=str(refused))
        if todo:
            try:
                with self._lock:
                    generations = self.generator.generate_batch([t for _, _, t, _ in todo])
            except Exception as exc:  # as in run()
                log.error("decoding failed: %s", exc, exc_info=not isinstance(exc, GenerationError))
                for i, _, _, _ in todo:
                    results[i] = self._result(
                        start,
                        _shown(texts[i]),
                        route=ROUTE_REJECT,
                        reason="model error: nothing executed",
                        error=_describe(exc),
                    )
                return [r for r in results if r is not None]
            for (i, cleaned, model_text, removed), generation in zip(todo, generations, strict=True):
                results[i] = self._decide(start, _shown(texts[i]), cleaned, model_text, removed, generation)
        return [r for r in results if r is not None]

    def _generate(self, model_text: str) -> GenerationResult:
        """One decode, serialised: the generator is not thread-safe (runtime/batched.py overrides this to share
        decode steps between concurrent commands)."""
        with self._lock:
            return self.generator.generate(model_text)

    # -- decisions ---------------------------------------------------------------------------------------------------

    def _result(self, start: float, text: str, **fields: Any) -> CommandResult:
        fields.setdefault("accepted", False)
        fields.setdefault("program", "")
        return CommandResult(text=text, latency_ms=(time.perf_counter() - start) * 1000.0, **fields)

    def _decide(
        self,
        start: float,
        text: str,
        cleaned: str,
        model_text: str,
        removed: int,
        generation: GenerationResult,
        spoken: bool = False,
    ) -> CommandResult:
        """`cleaned` is the sanitised input (what a cloud model gets: it normalises for itself), `model_text` what the
        model read."""
        raw = generation.text
        common: dict[str, Any] = {
            "confidence": generation.confidence,
            "raw_program": raw,
            "generation": generation,
            "model_text": model_text if model_text != text else None,
        }
        note = f" (removed {removed} control character(s) from the input)" if removed else ""
        if not generation.complete:
            return self._result(
                start,
                text,
                route=ROUTE_REJECT,
                reason=f"the model did not finish a program ({generation.stop_reason}): nothing executed{note}",
                **common,
            )
        plan = plan_program(raw, self.spec, self.safety_config)
        program = plan.program
        if plan.route == ROUTE_REMOTE:
            return self._to_cloud(
                start, text, cleaned, program, "the model routed it to the remote model", note, common, spoken
            )
        if plan.route == ROUTE_REJECT:
            return self._result(
                start,
                text,
                program=program,
                route=ROUTE_REJECT,
                reason=plan.reason + note,
                plan=plan,
                **common,
            )
        if plan.route != ROUTE_ROBOT:  # cannot happen with the grammar; refuse rather than trust it
            return self._result(
                start, text, program=program, route=ROUTE_REJECT, reason=plan.reason, plan=plan, **common
            )
        gate = self.speech_gate if spoken else self.gate
        if not gate.passes(generation):
            why = f"low confidence ({'speech ' if spoken else ''}{gate.describe(generation)})"
            return self._to_cloud(start, text, cleaned, program, why, note, common, spoken)
        # a sure model can still miscopy a number ("walk 0.75 metres" -> move x=0.7): such a program never moves
        unsaid = (
            unsaid_arguments(model_text, parse_program(program, self.spec), self.spec)
            if plan.accepted
            else []
        )
        if unsaid:
            why = f"{DISAGREE_REASON} ({'; '.join(unsaid)})"
            return self._to_cloud(start, text, cleaned, program, why, note, common, spoken)
        return self._result(
            start,
            text,
            program=program,
            route=ROUTE_ROBOT,
            accepted=plan.accepted,
            reason=plan.reason + note,
            plan=plan,
            **common,
        )

    def _to_cloud(
        self,
        start: float,
        text: str,
        cloud_text: str,
        program: str,
        why: str,
        note: str,
        common: dict[str, Any],
        spoken: bool = False,
    ) -> CommandResult:
        """Hand the command to the cloud hook; only a robot program it returns can be executed, after safety."""
        if self.cloud is None:
            return self._result(
                start,
                text,
                program=program,
                route=ROUTE_REMOTE,
                reason=f"{why}; no remote model configured: nothing executed{note}",
                **common,
            )
        try:
            answer = (
                self.cloud(cloud_text, spoken=True)
                if spoken and self._cloud_takes_spoken
                else self.cloud(cloud_text)
            )
        except Exception as exc:  # a hook is user code: its failure must not escape as a crash
            log.exception("the cloud hook failed")
            return self._result(
                start,
                text,
                program=program,
                route=ROUTE_REMOTE,
                reason=f"{why}; the remote model failed ({type(exc).__name__}: {exc}): nothing executed{note}",
                **common,
            )
        if answer is None or not isinstance(answer, str):
            return self._result(
                start,
                text,
                program=program,
                route=ROUTE_REMOTE,
                reason=f"{why}; the remote model gave no answer: nothing executed{note}",
                **common,
            )
        try:
            remote_route = parse_program(answer, self.spec).route
        except ProgramError:
            remote_route = None
        if remote_route == ROUTE_ROBOT:
            plan = plan_program(answer, self.spec, self.safety_config)
            verdict = "accepted" if plan.accepted else "refused"
            return self._result(
                start,
                text,
                program=program,
                route=ROUTE_ROBOT,
                accepted=plan.accepted,
                reason=f"{why}; program from the remote model {verdict}: {plan.reason}{note}",
                plan=plan,
                remote_answer=answer,
                **common,
            )
        if remote_route == ROUTE_REJECT:
            return self._result(
                start,
                text,
                program=program,
                route=ROUTE_REJECT,
                reason=f"{why}; the remote model refused the request{note}",
                remote_answer=answer,
                **common,
            )
        return self._result(
            start,
            text,
            program=program,
            route=ROUTE_REMOTE,
            reason=f"{why}; answered by the remote model: nothing executed{note}",
            remote_answer=answer,
            **common,
        )


def _takes_spoken(hook: Any) -> bool:
    try:
        return "spoken" in inspect.signature(hook).parameters
    except (TypeError, ValueError):  # a builtin or a C callable: call it with the text alone
        return False


def _argument_gate(min_confidence: float) -> ConfidenceGate:
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    # a threshold set by hand: next-best transcripts may be used (they execute only what passes that same gate)
    return ConfidenceGate("min_prob", float(min_confidence), "argument", next_best=True)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, GenerationError) else f"{type(exc).__name__}: {exc}"


def _shown(text: Any) -> str:
    return text if isinstance(text, str) else repr(text)[:200]


def _check_manifest(manifest: Manifest, spec: ActionSpec) -> None:
    """The runtime decodes causal-LM exports for the action language it ships; say so if this one is not."""
    task = manifest.raw.get("task", "causal_lm")
    if task != "causal_lm":
        raise ManifestError(
            f"{manifest.directory}: task {task!r}; this runtime decodes causal_lm exports only"
        )
    language = manifest.raw.get("action_language")
    if not isinstance(language, dict):
        log.warning(
            "%s: the manifest does not say which action language it was exported for", manifest.directory
        )
        return
    version = language.get("version")
    if version is not None and str(version) != str(spec.version):
        raise ManifestError(
            f"{manifest.directory}: exported for action language version {version}, this runtime speaks version "
            f"{spec.version}; re-export the model"
        )
    digest = language.get("sha256")
    if digest and digest != file_sha256(SPEC_PATH):
        log.warning(
            "%s: exported for a different actions.json of the same version (sha256 %s...); decoding with this "
            "runtime's copy",
            manifest.directory,
            str(digest)[:12],
        )
