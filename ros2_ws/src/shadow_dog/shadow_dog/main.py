"""`shadow-dog`: run the robot-dog node on Cyclone DDS (`--transport dds`, no ROS 2 install needed) or rclpy.

Parameters come from the defaults, then `--params FILE` (a ROS 2 parameters YAML such as config/shadow_dog.yaml),
then `-p KEY=VALUE` overrides, then the model directory (`MODEL_DIR` or `--model-dir`, as in shadow-run and
shadow-bench). Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when it cannot start (no transport, no
recorder), 2 for bad arguments or parameters. Zero velocity is published on every way out.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from shadow_edge.runtime.logs import setup_logging

from .config import ConfigError, NodeConfig, load_params_file

PROG = "shadow-dog"
log = logging.getLogger("shadow_dog")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Speech and text commands to robot-dog actions: the shadow_dog node without `ros2 launch`.",
    )
    parser.add_argument(
        "model_dir_arg",
        nargs="?",
        default=None,
        metavar="MODEL_DIR",
        help="shadow-export output directory (the same as --model-dir)",
    )
    parser.add_argument(
        "--transport",
        choices=("dds", "ros"),
        default="dds",
        help="dds: Cyclone DDS with ROS 2's wire conventions (needs only the cyclonedds wheel); ros: rclpy "
        "(needs a sourced ROS 2). Default: dds",
    )
    parser.add_argument(
        "--params", metavar="FILE", help="ROS 2 parameters YAML (shadow_dog: ros__parameters:)"
    )
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override one parameter"
    )
    parser.add_argument(
        "--model-dir", metavar="DIR", help="shadow-export output directory (parameter model_dir)"
    )
    parser.add_argument(
        "--domain-id", type=int, default=None, metavar="N", help="DDS domain (default: ROS_DOMAIN_ID or 0)"
    )
    parser.add_argument(
        "--wav",
        action="append",
        default=[],
        metavar="FILE",
        help="spoken command(s) to recognise and execute after start-up, in order",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    values: dict[str, Any] = {}
    if args.params:
        values.update(load_params_file(args.params))
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        values[key.strip()] = value
    if args.model_dir:
        values["model_dir"] = args.model_dir
    return NodeConfig.from_dict(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_dir_arg is not None:
        if args.model_dir is not None and args.model_dir != args.model_dir_arg:
            parser.error(f"MODEL_DIR {args.model_dir_arg} and --model-dir {args.model_dir} differ; give one")
        args.model_dir = args.model_dir_arg
    setup_logging(args.verbose, prog=PROG, timestamps=True)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.transport == "ros":
        from .ros_node import RclpyUnavailable, run_ros

        try:
            return run_ros(config)
        except RclpyUnavailable as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    return run_dds(config, args.domain_id, args.wav)


def run_dds(config: NodeConfig, domain_id: int | None = None, wavs: Sequence[str] = ()) -> int:
    try:
        from .dds_transport import DdsTransport
    except ImportError as exc:
        print(
            f"{PROG}: the dds transport needs the cyclonedds wheel (pip install 'shadow-edge[ros]'): {exc}",
            file=sys.stderr,
        )
        return 1
    from .logic import DogNodeLogic, load_commander
    from .runner import NodeRunner
    from .speech import SpeechFrontEnd

    try:
        transport = DdsTransport(config, domain_id)
    except Exception as exc:  # DDSException, a bad ROS_DOMAIN_ID, a bad CYCLONEDDS_URI
        print(f"{PROG}: cannot start Cyclone DDS: {exc}", file=sys.stderr)
        return 1
    recorder = None
    outputs: Any = transport
    if config.record_mcap:
        from .recorder import McapRecorder, RecordingOutputs

        try:
            recorder = McapRecorder(config.record_mcap, config)
        except (OSError, RuntimeError) as exc:
            print(f"{PROG}: cannot record to {config.record_mcap}: {exc}", file=sys.stderr)
            return 1
        outputs = RecordingOutputs(transport, recorder)
    commander, error = load_commander(config)
    logic = DogNodeLogic(outputs, commander, config, model_error=error)
    if recorder is not None:
        logic.input_observer = recorder.record_input
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    speech = SpeechFrontEnd(logic, config)
    try:
        with NodeRunner(logic):
            transport.attach(logic)
            speech.start()
            log.info(
                "ready: dds domain %d, commands on %s, model %s",
                transport.domain_id,
                transport.topic_name(config.command_topic),
                config.model_dir if commander is not None else f"not loaded ({error})",
            )
            for wav in wavs:
                speech.submit_wav(wav)
            done.wait()
    finally:  # NodeRunner's exit has published zero velocity by now, whatever happened
        speech.stop()
        transport.close()
        if recorder is not None:
            recorder.close()
            log.info("recorded %d messages to %s", recorder.count, config.record_mcap)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
