"""The node's diagnostics, read off its logic (`DogNodeLogic`, under its lock): the model (loaded or why not,
counts, latency percentiles), motion (e-stop, heartbeat, the running program, odometry) and audio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .outputs import DIAG_ERROR, DIAG_OK, DIAG_WARN, DiagnosticStatus

if TYPE_CHECKING:
    from .logic import DogNodeLogic


def node_diagnostics(logic: DogNodeLogic) -> list[DiagnosticStatus]:
    """The three statuses the node publishes on /diagnostics: model, motion, audio."""
    return [model_status(logic), motion_status(logic), audio_status(logic)]


def model_status(logic: DogNodeLogic) -> DiagnosticStatus:
    values: dict[str, str] = {"model_loaded": str(logic.commander is not None).lower()}
    if logic.commander is not None:
        try:
            info = logic.commander.info()
        except Exception as exc:
            info = {"error": f"{type(exc).__name__}: {exc}"}
        values.update(
            {
                "model_dir": str(info.get("model_dir") or logic.config.model_dir),
                "provider": ",".join(info.get("providers") or []) or "unknown",
                "mode": str(info.get("mode")),
                "precision": str(info.get("precision")),
            }
        )
    else:
        values["error"] = str(logic.model_error)
    values.update({k: str(v) for k, v in logic.counts.items()})
    values["pending"] = str(len(logic.queue))
    for name, window in (
        ("model", logic.model_latency),
        ("total", logic.total_latency),
        ("asr", logic.asr_latency),
    ):
        summary = window.summary()
        for key in ("p50", "p90", "p99"):
            values[f"{name}_latency_{key}_ms"] = "" if summary is None else f"{summary[key]:.2f}"
    return DiagnosticStatus(
        level=DIAG_OK if logic.commander is not None else DIAG_ERROR,
        name="shadow_dog: model",
        message="model loaded" if logic.commander is not None else f"no model: {logic.model_error}",
        hardware_id=logic.config.node_name,
        values=values,
    )


def motion_status(logic: DogNodeLogic) -> DiagnosticStatus:
    config, executor = logic.config, logic.executor
    heartbeat = (
        "not required"
        if config.heartbeat_timeout_s <= 0
        else ("ok" if logic.heartbeat_fresh(logic.clock()) else "missing")
    )
    if logic.estop:
        message = "e-stop engaged"
    elif heartbeat == "missing":
        message = "heartbeat missing"
    else:
        message = f"executing ({executor.motion_mode})" if executor.busy else "idle"
    return DiagnosticStatus(
        level=DIAG_WARN if logic.estop or heartbeat == "missing" or logic.tick_errors else DIAG_OK,
        name="shadow_dog: motion",
        message=message,
        hardware_id=config.node_name,
        values={
            "program": executor.running_program,
            "estop": str(logic.estop).lower(),
            "heartbeat": heartbeat,
            "go2_sport_output": str(config.go2_sport_output).lower(),
            "control_period_s": str(config.control_period_s),
            "tick_errors": str(logic.tick_errors),
            **odometry_values(logic),
        },
    )


def odometry_values(logic: DogNodeLogic) -> dict[str, str]:
    """Whether motion runs closed loop on odometry (and why not), and the executor's counts."""
    now = logic.clock()
    odometry = logic.odometry
    state = odometry.state(now)
    if not logic.config.closed_loop:
        loop = "open loop: closed_loop is off"
    elif state == "fresh":
        loop = "closed loop"
    else:
        loop = f"open loop: odometry {state}"
    values = {
        "odometry": state,
        "odometry_source": odometry.source,
        "odometry_age_s": "" if state == "absent" else f"{odometry.age(now):.3f}",
        "motion_control": loop,
        "motion_mode": logic.executor.motion_mode,
    }
    values.update({k: str(v) for k, v in logic.executor.counts.items()})
    return values


def audio_status(logic: DogNodeLogic) -> DiagnosticStatus:
    level, message = logic.audio_status
    return DiagnosticStatus(
        level=level,
        name="shadow_dog: audio",
        message=message,
        hardware_id=logic.config.node_name,
        values={
            "asr_engine": logic.config.asr_engine,
            "capture": str(logic.config.audio_capture).lower(),
        },
    )
