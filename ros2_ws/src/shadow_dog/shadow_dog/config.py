"""The node's parameters: one typed, validated record shared by every transport.

The same names are ROS 2 parameters (rclpy adapter), keys under `shadow_dog: ros__parameters:` in
`config/shadow_dog.yaml` (read by both transports), and `--param KEY=VALUE` overrides of `shadow-dog`.
`PARAMETER_DOCS` documents each one; `config/shadow_dog.yaml` repeats the documentation and a test keeps the two
in step. Bad values raise `ConfigError` naming the parameter, so a mistyped launch file fails at start-up instead
of moving the robot with a surprising setting.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "shadow_dog"

DEFAULT_STOP_PHRASES = (
    "stop",
    "stop now",
    "stop moving",
    "stop it",
    "halt",
    "freeze",
    "emergency stop",
    "e stop",
    "停",
    "停下",
    "停止",
    "停下来",
    "别动",
    "站住",
)


class ConfigError(ValueError):
    """A parameter has a bad value or an unknown name; the message names it."""


@dataclass(frozen=True)
class NodeConfig:
    # -- topics ("~/" is the node's private namespace: /shadow_dog/...) ------------------------------------------
    command_topic: str = "~/command_text"
    stop_topic: str = "~/stop"
    estop_topic: str = "~/estop"
    heartbeat_topic: str = "~/heartbeat"
    cmd_vel_topic: str = "/cmd_vel"
    program_topic: str = "~/program"
    heard_topic: str = "~/heard"
    remote_topic: str = "~/remote"
    answer_topic: str = "~/answer"
    sound_topic: str = "~/sound"
    diagnostics_topic: str = "/diagnostics"
    sport_request_topic: str = "/api/sport/request"
    odom_topic: str = "/odom"
    sportmodestate_topic: str = "/sportmodestate"
    # -- model ----------------------------------------------------------------------------------------------------
    model_dir: str = ""
    provider: str = "auto"
    threads: int = 0
    min_confidence: float = 0.5
    cloud_url: str = ""
    cloud_timeout_s: float = 2.0
    cloud_token_file: str = ""
    # -- execution and safety ---------------------------------------------------------------------------------------
    control_period_s: float = 0.05
    max_pending_commands: int = 2
    heartbeat_timeout_s: float = 0.0
    stop_repeat_ticks: int = 3
    action_hold_s: float = 2.0
    bark_hold_s: float = 0.5
    cruise_vx: float = 0.5
    cruise_vy: float = 0.3
    cruise_vyaw: float = 0.8
    max_motion_s: float = 60.0
    closed_loop: bool = True
    odom_timeout_s: float = 0.5
    closed_loop_timeout_factor: float = 1.5
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES
    go2_sport_output: bool = False
    go2_move_via_sport: bool = True
    diagnostics_period_s: float = 1.0
    latency_window: int = 500
    # -- speech ------------------------------------------------------------------------------------------------------
    audio_capture: bool = False
    audio_device: int = -1
    audio_rate: int = 16000
    audio_chunk: int = 480
    asr_engine: str = "whisper"
    vad_threshold: float = 0.5
    vad_silence_s: float = 0.3
    wav_dir: str = ""
    # -- records ------------------------------------------------------------------------------------------------------
    record_mcap: str = ""

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def node_name(self) -> str:
        return NODE_NAME

    def resolve(self, topic: str) -> str:
        """The absolute ROS 2 name: `~/x` -> `/shadow_dog/x`, `x` -> `/x`."""
        if topic.startswith("~/"):
            return f"/{NODE_NAME}/{topic[2:]}"
        return topic if topic.startswith("/") else f"/{topic}"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NodeConfig:
        """Build from parameter values (unknown names and wrong types raise `ConfigError`)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        converted = {name: _convert(name, known[name].default, value) for name, value in values.items()}
        return cls(**converted)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["stop_phrases"] = list(self.stop_phrases)
        return out


PARAMETER_DOCS: dict[str, str] = {
    "command_topic": "std_msgs/String in: a command as text (any language the model knows)",
    "stop_topic": "std_msgs/Empty in: halt now (within one control period) and drop pending commands",
    "estop_topic": "std_msgs/Bool in: true latches an emergency stop (halt, refuse all motion); false releases it",
    "heartbeat_topic": "std_msgs/Empty in: operator heartbeat, required only when heartbeat_timeout_s > 0",
    "cmd_vel_topic": "geometry_msgs/Twist out: body-frame velocity while a motion segment runs, zero at its end",
    "program_topic": "std_msgs/String out: JSON per command (text, program, route, accepted, reason, latencies_ms)",
    "heard_topic": "std_msgs/String out: the text recognised from speech",
    "remote_topic": "std_msgs/String out: JSON of commands routed to the remote model (for a cloud bridge)",
    "answer_topic": "std_msgs/String out: the remote model's text answer to a question (nothing moves)",
    "sound_topic": "std_msgs/String out: sounds to play, e.g. 'bark n=2'",
    "diagnostics_topic": "diagnostic_msgs/DiagnosticArray out: model, motion and audio status",
    "sport_request_topic": "unitree_api/Request out (go2_sport_output only): Go2 sport-API requests",
    "odom_topic": "nav_msgs/Odometry in: the robot's pose, for closed-loop motion",
    "sportmodestate_topic": "unitree_go/SportModeState in (DDS transport): the Go2's own pose, for closed-loop motion",
    "model_dir": "shadow-export output directory; empty: no model, every command is refused (stop still works)",
    "provider": "onnxruntime execution provider(s): auto, cpu, cuda, tensorrt, or a comma-separated list",
    "threads": "onnxruntime intra-op threads; 0: physical cores",
    "min_confidence": "programs whose weakest token probability is below this go to the remote route",
    "cloud_url": "HTTP endpoint of a remote model for remote-routed commands (POST {'text'}); empty: none",
    "cloud_timeout_s": "longest wait for the remote model's answer, in seconds",
    "cloud_token_file": "file holding the bearer token for cloud_url (shadow-serve --token-file); empty: none",
    "control_period_s": "control loop period in seconds: velocity messages, stop latency, watchdog checks",
    "max_pending_commands": "commands waiting for the model; when full the oldest is dropped (latest wins)",
    "heartbeat_timeout_s": "> 0: motion only while a heartbeat arrived within this many seconds; 0: not required",
    "stop_repeat_ticks": "after a halt, zero velocity is published on this many control ticks (lossy links)",
    "action_hold_s": "seconds a posture or trick request is given before the program's next step",
    "bark_hold_s": "seconds per bark before the program's next step",
    "cruise_vx": "planning speed forward/backward in m/s (at most the spec limit 0.6)",
    "cruise_vy": "planning speed sideways in m/s (at most the spec limit 0.4)",
    "cruise_vyaw": "planning turn rate in rad/s (at most the spec limit 1.0)",
    "max_motion_s": "longest a single program may keep the robot moving, in seconds",
    "closed_loop": "with fresh odometry, a move or turn ends at its target pose instead of after its time",
    "odom_timeout_s": "odometry older than this many seconds is stale: motion falls back to timed (open loop)",
    "closed_loop_timeout_factor": "a closed-loop segment gives up after this many times its planned duration + 1 s",
    "stop_phrases": "utterances that halt at once without the model (whole utterance or its first words)",
    "go2_sport_output": "send Unitree Go2 sport-API requests (postures, tricks, StopMove) on sport_request_topic",
    "go2_move_via_sport": "with go2_sport_output: motion segments are also sent as sport Move requests",
    "diagnostics_period_s": "seconds between diagnostics messages",
    "latency_window": "how many recent commands the latency percentiles are computed over",
    "audio_capture": "capture speech from a microphone with pyaudio (needs an input device)",
    "audio_device": "pyaudio input device index; -1: the default device",
    "audio_rate": "capture sample rate in Hz (the recogniser wants 16000)",
    "audio_chunk": "samples per capture chunk (480 = 30 ms at 16 kHz)",
    "asr_engine": "speech recogniser: whisper (Whisper tiny.en) or pocketsphinx-grammar (light, command grammar)",
    "vad_threshold": "Silero VAD speech probability (0..1) at which speech starts",
    "vad_silence_s": "hangover: seconds below the VAD threshold that end an utterance",
    "wav_dir": "directory watched for new .wav files, each recognised as one spoken command; empty: off",
    "record_mcap": "MCAP file to record every input and output to (ROS 2 format, for replay); empty: off",
}


# Parameters the rclpy adapter lets `ros2 param set` change while the node runs (checked like at start-up); the
# others (topics, model, audio, records) are read once at start-up, and changing them is refused.
LIVE_PARAMETERS = frozenset(
    {
        "heartbeat_timeout_s",
        "stop_repeat_ticks",
        "action_hold_s",
        "bark_hold_s",
        "cruise_vx",
        "cruise_vy",
        "cruise_vyaw",
        "max_motion_s",
        "closed_loop",
        "odom_timeout_s",
        "closed_loop_timeout_factor",
        "diagnostics_period_s",
    }
)


def _convert(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if not number.is_integer():
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(number)
    if isinstance(default, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}: expected a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


def _validate(config: NodeConfig) -> None:
    def positive(name: str, allow_zero: bool = False) -> None:
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")

    for name in (
        "control_period_s",
        "cloud_timeout_s",
        "diagnostics_period_s",
        "max_motion_s",
        "vad_silence_s",
        "odom_timeout_s",
    ):
        positive(name)
    if not (math.isfinite(config.closed_loop_timeout_factor) and config.closed_loop_timeout_factor >= 1.0):
        raise ConfigError(
            f"closed_loop_timeout_factor must be >= 1, got {config.closed_loop_timeout_factor!r}"
        )
    for name in ("heartbeat_timeout_s", "action_hold_s", "bark_hold_s"):
        positive(name, allow_zero=True)
    if config.control_period_s > 0.5:
        raise ConfigError(f"control_period_s must be <= 0.5 s (stop latency), got {config.control_period_s}")
    if 0 < config.heartbeat_timeout_s < config.control_period_s:
        raise ConfigError("heartbeat_timeout_s must be 0 (off) or at least control_period_s")
    if not 0.0 <= config.min_confidence <= 1.0:
        raise ConfigError(f"min_confidence must be in [0, 1], got {config.min_confidence}")
    for name in ("max_pending_commands", "latency_window", "audio_rate", "audio_chunk"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.stop_repeat_ticks < 1:
        raise ConfigError(f"stop_repeat_ticks must be >= 1, got {config.stop_repeat_ticks}")
    if config.threads < 0:
        raise ConfigError(f"threads must be >= 0, got {config.threads}")
    for name in (f.name for f in dataclasses.fields(config) if f.name.endswith("_topic")):
        topic = getattr(config, name)
        if not topic or any(ch.isspace() for ch in topic):
            raise ConfigError(f"{name}: not a topic name: {topic!r}")
    if config.asr_engine not in ("whisper", "pocketsphinx-grammar"):
        raise ConfigError(
            f"asr_engine: unsupported engine {config.asr_engine!r} (supported: whisper, pocketsphinx-grammar)"
        )
    if not 0.0 < config.vad_threshold < 1.0:
        raise ConfigError(f"vad_threshold must be in (0, 1), got {config.vad_threshold}")
    if not all(p.strip() for p in config.stop_phrases):
        raise ConfigError("stop_phrases: empty phrase")
    try:
        from shadow_edge.runtime.safety import SafetyConfig

        SafetyConfig(config.cruise_vx, config.cruise_vy, config.cruise_vyaw, config.max_motion_s)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_params_file(path: str | Path) -> dict[str, Any]:
    """The `shadow_dog: ros__parameters:` mapping of a ROS 2 parameters YAML file (also `/**:` wildcard)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read parameters: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of node names to ros__parameters")
    params: dict[str, Any] = {}
    for key in ("/**", NODE_NAME, f"/{NODE_NAME}"):
        section = raw.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ConfigError(f"{path}: {key}: expected a 'ros__parameters' mapping")
        params.update(section["ros__parameters"])
    if not params and raw:
        raise ConfigError(f"{path}: no '{NODE_NAME}: ros__parameters:' section")
    return params


def parameter_defaults() -> dict[str, Any]:
    """Every parameter with its default, in declaration order (what the rclpy adapter declares)."""
    return NodeConfig().to_dict()


__all__ = [
    "DEFAULT_STOP_PHRASES",
    "LIVE_PARAMETERS",
    "NODE_NAME",
    "PARAMETER_DOCS",
    "ConfigError",
    "NodeConfig",
    "load_params_file",
    "parameter_defaults",
]
