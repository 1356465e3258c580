"""The rclpy adapter: a thin `rclpy.node.Node` around `DogNodeLogic` (what `ros2 launch shadow_dog ...` starts).

rclpy and the message packages are imported only when the node starts, so this module imports anywhere. Every
parameter of `NodeConfig` is declared with its default; the launch file's YAML overrides them. Subscriptions hand
messages to the logic; the logic's outputs are rclpy publishers. The model worker and control loop are the same
`NodeRunner` threads the DDS transport uses; rclpy spins the subscriptions. The Go2 sport output needs the
`unitree_api` message package (Unitree's unitree_ros2); without it the node says so and runs without it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .config import NodeConfig, parameter_defaults
from .logic import DogNodeLogic, load_commander
from .outputs import DiagnosticStatus, SportRequest

log = logging.getLogger(__name__)

QOS_DEPTH = 10


class RclpyUnavailable(RuntimeError):
    """rclpy or a message package cannot be imported: ROS 2 is not sourced here."""


def _import_ros() -> dict[str, Any]:
    try:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        from geometry_msgs.msg import Twist
        from rclpy.node import Node
        from std_msgs.msg import Bool, Empty, String
    except ImportError as exc:
        raise RclpyUnavailable(
            f"rclpy is not available ({exc}): source your ROS 2 setup (e.g. /opt/ros/humble/setup.bash), "
            "or run `shadow-dog --transport dds`"
        ) from None
    return {
        "rclpy": rclpy,
        "Node": Node,
        "String": String,
        "Bool": Bool,
        "Empty": Empty,
        "Twist": Twist,
        "DiagnosticArray": DiagnosticArray,
        "DiagnosticStatus": DiagnosticStatus,
        "KeyValue": KeyValue,
    }


def _import_unitree_request() -> Any | None:
    try:
        from unitree_api.msg import Request
    except ImportError:
        return None
    return Request


class RosOutputs:
    """`NodeOutputs` on rclpy publishers."""

    def __init__(self, node: Any, ros: dict[str, Any], config: NodeConfig) -> None:
        self.node = node
        self.ros = ros
        String = ros["String"]
        self._cmd_vel = node.create_publisher(ros["Twist"], config.cmd_vel_topic, QOS_DEPTH)
        self._program = node.create_publisher(String, config.program_topic, QOS_DEPTH)
        self._heard = node.create_publisher(String, config.heard_topic, QOS_DEPTH)
        self._remote = node.create_publisher(String, config.remote_topic, QOS_DEPTH)
        self._answer = node.create_publisher(String, config.answer_topic, QOS_DEPTH)
        self._sound = node.create_publisher(String, config.sound_topic, QOS_DEPTH)
        self._diagnostics = node.create_publisher(ros["DiagnosticArray"], config.diagnostics_topic, QOS_DEPTH)
        self._request_type = None
        self._sport = None
        if config.go2_sport_output:
            self._request_type = _import_unitree_request()
            if self._request_type is None:
                node.get_logger().error(
                    "go2_sport_output is on but unitree_api is not installed: no sport requests will be sent"
                )
            else:
                self._sport = node.create_publisher(self._request_type, config.sport_request_topic, QOS_DEPTH)

    def _string(self, text: str) -> Any:
        msg = self.ros["String"]()
        msg.data = text
        return msg

    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        msg = self.ros["Twist"]()
        msg.linear.x, msg.linear.y, msg.angular.z = float(vx), float(vy), float(vyaw)
        self._cmd_vel.publish(msg)

    def sport_request(self, request: SportRequest) -> None:
        if self._sport is None:
            return
        msg = self._request_type()
        msg.header.identity.id = int(request.request_id)
        msg.header.identity.api_id = int(request.api_id)
        msg.parameter = request.parameter
        self._sport.publish(msg)

    def program(self, record: dict[str, Any]) -> None:
        self._program.publish(self._string(json.dumps(record, ensure_ascii=False)))

    def heard(self, text: str) -> None:
        self._heard.publish(self._string(text))

    def remote(self, record: dict[str, Any]) -> None:
        self._remote.publish(self._string(json.dumps(record, ensure_ascii=False)))

    def answer(self, text: str) -> None:
        self._answer.publish(self._string(text))

    def sound(self, name: str, count: int) -> None:
        self._sound.publish(self._string(f"{name} n={count}"))

    def diagnostics(self, statuses: list[DiagnosticStatus]) -> None:
        array = self.ros["DiagnosticArray"]()
        array.header.stamp = self.node.get_clock().now().to_msg()
        for status in statuses:
            msg = self.ros["DiagnosticStatus"]()
            msg.level = bytes([status.level])  # `byte` fields are bytes in rclpy
            msg.name, msg.message, msg.hardware_id = status.name, status.message, status.hardware_id
            for key, value in status.values.items():
                kv = self.ros["KeyValue"]()
                kv.key, kv.value = key, value
                msg.values.append(kv)
            array.status.append(msg)
        self._diagnostics.publish(array)


def declare_config(node: Any, base: NodeConfig | None = None) -> NodeConfig:
    """Declare every parameter (default: `base`'s value) and read back what the launch file set."""
    defaults = parameter_defaults() if base is None else base.to_dict()
    values = {}
    for name, default in defaults.items():
        node.declare_parameter(name, default)
        values[name] = node.get_parameter(name).value
    return NodeConfig.from_dict(values)


def build(ros: dict[str, Any], base: NodeConfig | None = None) -> tuple[Any, DogNodeLogic, Any | None]:
    """The rclpy node, its logic (subscriptions attached) and the MCAP recorder if one is configured (rclpy must be
    initialised)."""
    node = ros["Node"]("shadow_dog")
    config = declare_config(node, base)
    outputs: Any = RosOutputs(node, ros, config)
    recorder = None
    if config.record_mcap:
        from .recorder import McapRecorder, RecordingOutputs

        recorder = McapRecorder(config.record_mcap, config)
        outputs = RecordingOutputs(outputs, recorder)
    commander, error = load_commander(config)
    logic = DogNodeLogic(outputs, commander, config, model_error=error)
    if recorder is not None:
        logic.input_observer = recorder.record_input

    def on_command(msg: Any) -> None:
        data = getattr(msg, "data", None)
        if not isinstance(data, str):
            logic.refuse_input(repr(msg)[:100], "not a std_msgs/String", "text")
            return
        logic.submit_text(data, source="text")

    node.create_subscription(ros["String"], config.command_topic, on_command, QOS_DEPTH)
    node.create_subscription(ros["Empty"], config.stop_topic, lambda msg: logic.stop("stop topic"), QOS_DEPTH)
    node.create_subscription(
        ros["Bool"], config.estop_topic, lambda msg: logic.set_estop(bool(msg.data)), QOS_DEPTH
    )
    node.create_subscription(ros["Empty"], config.heartbeat_topic, lambda msg: logic.heartbeat(), QOS_DEPTH)
    return node, logic, recorder


def run_ros(base: NodeConfig | None = None, args: list[str] | None = None) -> int:
    """Initialise rclpy, run the node until shutdown (Ctrl-C, `ros2 launch` stop), publish zero on the way out."""
    ros = _import_ros()
    rclpy = ros["rclpy"]
    from .runner import NodeRunner
    from .speech import SpeechFrontEnd

    rclpy.init(args=args)
    node = None
    try:
        node, logic, recorder = build(ros, base)
        speech = SpeechFrontEnd(logic, logic.config)
        with NodeRunner(logic):
            speech.start()
            node.get_logger().info(
                "ready: model "
                + (
                    logic.config.model_dir
                    if logic.commander is not None
                    else f"not loaded ({logic.model_error})"
                )
            )
            try:
                rclpy.spin(node)
            except (
                KeyboardInterrupt,
                Exception,
            ) as exc:  # ExternalShutdownException and friends end the spin
                if not isinstance(exc, KeyboardInterrupt):
                    log.info("spin ended: %s", exc)
            finally:
                speech.stop()
        if recorder is not None:
            recorder.close()
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(args: list[str] | None = None) -> None:
    """The ament entry point (`ros2 run shadow_dog shadow_dog_node`)."""
    import sys

    try:
        raise SystemExit(run_ros(args=args))
    except RclpyUnavailable as exc:
        print(f"shadow_dog: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
