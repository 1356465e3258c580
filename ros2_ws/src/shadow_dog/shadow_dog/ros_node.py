"""The rclpy adapter: a thin `rclpy.node.Node` around `DogNodeLogic` (what `ros2 launch shadow_dog ...` starts).

rclpy and the message packages are imported only when the node starts, so this module imports anywhere. Every
parameter of `NodeConfig` is declared with its default; the launch file's YAML (or `--ros-args -p`) overrides them.
While it runs, `ros2 param set` (the parameter services) may change the `LIVE_PARAMETERS`, checked as at start-up:
a wrong type is refused by rclpy, a bad value (a speed over the action spec's limit) by the node, and every other
parameter is read at start-up only. Subscriptions hand messages to the logic; the logic's outputs are rclpy
publishers; nav_msgs/Odometry on `odom_topic` feeds closed-loop motion. The model worker and control loop are the
same `NodeRunner` threads the DDS transport uses; the main thread spins the subscriptions, one callback at a time,
and a callback that fails is logged and refused, never the end of the node. SIGINT and SIGTERM end the spin, then
zero velocity goes out while the publishers still work, then rclpy shuts down. The Go2 sport output needs the
`unitree_api` message package (Unitree's unitree_ros2); without it the node says so and runs without it.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Any

from .config import LIVE_PARAMETERS, ConfigError, NodeConfig, parameter_defaults
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
        from rcl_interfaces.msg import SetParametersResult
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.signals import SignalHandlerOptions
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
        "SetParametersResult": SetParametersResult,
        "SingleThreadedExecutor": SingleThreadedExecutor,
        "ExternalShutdownException": ExternalShutdownException,
        "SignalHandlerOptions": SignalHandlerOptions,
        "Odometry": _import_odometry(),
    }


def _import_odometry() -> Any | None:
    try:
        from nav_msgs.msg import Odometry
    except ImportError:
        return None
    return Odometry


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
    """Declare every parameter (default: `base`'s value) and read back what the launch file set. A value of the
    wrong type or out of range raises `ConfigError` naming the parameter."""
    defaults = parameter_defaults() if base is None else base.to_dict()
    values = {}
    for name, default in defaults.items():
        try:
            node.declare_parameter(name, default)
        except Exception as exc:  # rclpy's InvalidParameterTypeException and friends: a mistyped override
            raise ConfigError(f"{name}: {exc}") from None
        values[name] = node.get_parameter(name).value
    return NodeConfig.from_dict(values)


def parameter_change(config: NodeConfig, changes: dict[str, Any]) -> tuple[NodeConfig | None, str]:
    """The configuration after `changes` (name -> value), or (None, why not): only `LIVE_PARAMETERS` change while
    the node runs, and the result must pass the same checks as at start-up."""
    fixed = sorted(name for name in changes if name not in LIVE_PARAMETERS)
    if fixed:
        return None, f"{', '.join(fixed)}: read at start-up only (restart the node to change)"
    values = config.to_dict()
    values.update(changes)
    try:
        return NodeConfig.from_dict(values), ""
    except ConfigError as exc:
        return None, str(exc)


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
    if ros.get("Odometry") is not None:
        node.create_subscription(
            ros["Odometry"], config.odom_topic, lambda msg: _on_odometry(logic, msg), QOS_DEPTH
        )
    else:
        node.get_logger().warning("nav_msgs is not installed: no odometry, motion is timed (open loop)")

    def on_set_parameters(params: list[Any]) -> Any:
        new, reason = parameter_change(logic.config, {p.name: p.value for p in params})
        result = ros["SetParametersResult"]()
        result.successful = new is not None
        result.reason = reason
        if new is None:
            log.warning("refused a parameter change: %s", reason)
        else:
            logic.reconfigure(new)
            log.info("parameters changed: %s", ", ".join(f"{p.name}={p.value!r}" for p in params))
        return result

    node.add_on_set_parameters_callback(on_set_parameters)
    return node, logic, recorder


def _on_odometry(logic: DogNodeLogic, msg: Any) -> None:
    from .odometry import yaw_from_quaternion

    pose = msg.pose.pose
    q = pose.orientation
    logic.odometry_input(pose.position.x, pose.position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w), "odom")


def run_ros(base: NodeConfig | None = None, args: list[str] | None = None) -> int:
    """Initialise rclpy, run the node until SIGINT/SIGTERM or an rclpy shutdown, publish zero on the way out.
    Returns 0 after a clean shutdown, 2 for bad parameters."""
    ros = _import_ros()
    rclpy = ros["rclpy"]
    from .runner import NodeRunner
    from .speech import SpeechFrontEnd

    # rclpy's own SIGINT handler would shut the context down before the zero velocity could be published.
    rclpy.init(args=args, signal_handler_options=ros["SignalHandlerOptions"].NO)
    node = None
    done = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            node, logic, recorder = build(ros, base)
        except ConfigError as exc:
            log.error("bad parameters: %s", exc)
            return 2
        executor = ros["SingleThreadedExecutor"]()
        executor.add_node(node)
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
                spin_until(executor, done, logic, rclpy, ros["ExternalShutdownException"])
            finally:
                speech.stop()
        # NodeRunner's exit has published zero velocity by now, with the context still up
        if recorder is not None:
            recorder.close()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def spin_until(
    executor: Any, done: threading.Event, logic: DogNodeLogic, rclpy: Any, shutdown_error: type
) -> None:
    """Spin one callback at a time until `done` or an rclpy shutdown. A callback that raises (a message that
    cannot be read, a bug) is logged and refused; the node goes on."""
    while not done.is_set() and rclpy.ok():
        try:
            executor.spin_once(timeout_sec=0.1)
        except shutdown_error:
            return
        except Exception as exc:
            log.exception("a callback failed: its message is refused")
            logic.refuse_input(
                "<message>", f"could not be handled ({type(exc).__name__}: {exc})"[:300], "ros"
            )


def main(args: list[str] | None = None) -> None:
    """The ament entry point (`ros2 run shadow_dog shadow_dog_node [--ros-args -p name:=value ...]`)."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        raise SystemExit(run_ros(args=sys.argv if args is None else args))
    except RclpyUnavailable as exc:
        print(f"shadow_dog: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
