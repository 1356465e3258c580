"""A real rclpy peer of the shadow_dog node, driven over stdin/stdout: run it with the ROS venv's python.

    build/ros-kilted-venv/bin/python tests/rclpy_peer.py        (environment: shadow_dog.loopback.loopback_env)

One JSON request per stdin line, one JSON answer per stdout line. The peer publishes the node's inputs
(`command` std_msgs/String, `stop` Empty, `estop` Bool, `heartbeat` Empty, `odom` nav_msgs/Odometry, or a
serialized CDR payload with `raw`), subscribes to its outputs (/cmd_vel, ~/program, /diagnostics, ~/sound) with
each message's arrival time on CLOCK_MONOTONIC (the same clock as `time.monotonic()` in any other process here),
and uses the parameter services of the node. Requests:

    {"op": "wait_match", "timeout": 20}            the node's subscriptions, publishers (and, unless
                                                   "services": false, parameter services) are matched
    {"op": "publish", "topic": "command", "data": "walk two metres"}
    {"op": "publish_raw", "topic": "command", "hex": "0001..."}
    {"op": "publish_odom", "x": 0, "y": 0, "yaw": 0}
    {"op": "heartbeats", "period": 0.1, "on": true}  publish ~/heartbeat every period (a thread)
    {"op": "take"}                                 everything received since the last take
    {"op": "set_params", "params": {"cruise_vx": 0.9}}
    {"op": "get_params", "names": ["cruise_vx"]}
    {"op": "quit"}
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool, Empty, String

NODE = "/shadow_dog"
INPUTS = {
    "command": (String, f"{NODE}/command_text"),
    "stop": (Empty, f"{NODE}/stop"),
    "estop": (Bool, f"{NODE}/estop"),
    "heartbeat": (Empty, f"{NODE}/heartbeat"),
    "odom": (Odometry, "/odom"),
}


def parameter_value(value):  # noqa: ANN001, ANN201 -- plain JSON values in, rcl_interfaces out
    pv = ParameterValue()
    if isinstance(value, bool):
        pv.type, pv.bool_value = ParameterType.PARAMETER_BOOL, value
    elif isinstance(value, int):
        pv.type, pv.integer_value = ParameterType.PARAMETER_INTEGER, value
    elif isinstance(value, float):
        pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, value
    elif isinstance(value, str):
        pv.type, pv.string_value = ParameterType.PARAMETER_STRING, value
    elif isinstance(value, list):
        pv.type, pv.string_array_value = ParameterType.PARAMETER_STRING_ARRAY, [str(v) for v in value]
    else:
        raise ValueError(f"unsupported parameter value {value!r}")
    return pv


def plain_value(pv):  # noqa: ANN001, ANN201
    return {
        ParameterType.PARAMETER_BOOL: lambda: pv.bool_value,
        ParameterType.PARAMETER_INTEGER: lambda: pv.integer_value,
        ParameterType.PARAMETER_DOUBLE: lambda: pv.double_value,
        ParameterType.PARAMETER_STRING: lambda: pv.string_value,
        ParameterType.PARAMETER_STRING_ARRAY: lambda: list(pv.string_array_value),
    }.get(pv.type, lambda: None)()


class Peer(Node):
    def __init__(self) -> None:
        super().__init__("shadow_dog_test_peer")
        self.lock = threading.Lock()
        self.received: dict[str, list] = {"twists": [], "programs": [], "diagnostics": [], "sounds": []}
        self.pubs = {name: self.create_publisher(kind, topic, 100) for name, (kind, topic) in INPUTS.items()}
        self.create_subscription(Twist, "/cmd_vel", self.on_twist, 1000)
        self.create_subscription(String, f"{NODE}/program", self.on_program, 1000)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 100)
        self.create_subscription(String, f"{NODE}/sound", self.on_sound, 100)
        self.set_client = self.create_client(SetParameters, f"{NODE}/set_parameters")
        self.get_client = self.create_client(GetParameters, f"{NODE}/get_parameters")
        self.heartbeats: threading.Event | None = None

    def add(self, kind: str, value) -> None:  # noqa: ANN001
        with self.lock:
            self.received[kind].append([time.monotonic(), value])

    def on_twist(self, msg: Twist) -> None:
        self.add("twists", [msg.linear.x, msg.linear.y, msg.angular.z])

    def on_program(self, msg: String) -> None:
        try:
            self.add("programs", json.loads(msg.data))
        except ValueError:
            self.add("programs", {"unparsable": msg.data[:200]})

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.add(
            "diagnostics",
            [
                {
                    "name": s.name,
                    "level": s.level[0] if isinstance(s.level, bytes) else int(s.level),
                    "message": s.message,
                    "values": {kv.key: kv.value for kv in s.values},
                }
                for s in msg.status
            ],
        )

    def on_sound(self, msg: String) -> None:
        self.add("sounds", msg.data)

    def take(self) -> dict:
        with self.lock:
            out, self.received = self.received, {k: [] for k in self.received}
        return out

    def matched(self, services: bool = True) -> bool:
        inputs = all(self.count_subscribers(topic) >= 1 for _, topic in INPUTS.values())
        outputs = self.count_publishers("/cmd_vel") >= 1 and self.count_publishers(f"{NODE}/program") >= 1
        ready = self.set_client.service_is_ready() and self.get_client.service_is_ready()
        return inputs and outputs and (ready or not services)


def call(client, request, timeout: float = 10.0):  # noqa: ANN001, ANN201
    future = client.call_async(request)
    end = time.monotonic() + timeout
    while not future.done() and time.monotonic() < end:
        time.sleep(0.01)
    if not future.done():
        raise TimeoutError(f"{client.srv_name} did not answer in {timeout} s")
    return future.result()


def handle(peer: Peer, request: dict) -> dict:
    op = request["op"]
    if op == "wait_match":
        end = time.monotonic() + float(request.get("timeout", 20.0))
        while time.monotonic() < end:
            if peer.matched(bool(request.get("services", True))):
                time.sleep(0.3)  # discovery of both sides' endpoints settles
                return {"ok": True}
            time.sleep(0.05)
        return {"ok": False, "error": "the node's endpoints were not matched in time"}
    if op == "publish":
        kind, _ = INPUTS[request["topic"]]
        msg = kind()
        if "data" in request:
            msg.data = request["data"]
        peer.pubs[request["topic"]].publish(msg)
        return {"ok": True, "t": time.monotonic()}
    if op == "publish_raw":
        peer.pubs[request["topic"]].publish(bytes.fromhex(request["hex"]))  # a serialized message, as is
        return {"ok": True, "t": time.monotonic()}
    if op == "publish_odom":
        msg = Odometry()
        msg.pose.pose.position.x, msg.pose.pose.position.y = float(request["x"]), float(request["y"])
        yaw = float(request["yaw"])
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        peer.pubs["odom"].publish(msg)
        return {"ok": True, "t": time.monotonic()}
    if op == "heartbeats":
        if peer.heartbeats is not None:
            peer.heartbeats.set()  # stops the thread that is running
            peer.heartbeats = None
        if request.get("on", True):
            stop, period, pub = threading.Event(), float(request.get("period", 0.1)), peer.pubs["heartbeat"]

            def beat() -> None:
                while not stop.is_set():
                    pub.publish(Empty())
                    stop.wait(period)

            threading.Thread(target=beat, name="heartbeats", daemon=True).start()
            peer.heartbeats = stop
        return {"ok": True, "t": time.monotonic()}
    if op == "take":
        return {"ok": True, **peer.take()}
    if op == "set_params":
        req = SetParameters.Request()
        req.parameters = [Parameter(name=k, value=parameter_value(v)) for k, v in request["params"].items()]
        results = call(peer.set_client, req).results
        return {"ok": True, "results": [{"successful": r.successful, "reason": r.reason} for r in results]}
    if op == "get_params":
        req = GetParameters.Request()
        req.names = list(request["names"])
        values = call(peer.get_client, req).values
        return {"ok": True, "values": [plain_value(v) for v in values]}
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    rclpy.init()
    peer = Peer()
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    stopping = threading.Event()

    def spin() -> None:
        while not stopping.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name="peer-spin")
    spinner.start()
    print(json.dumps({"ok": True, "ready": True}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("op") == "quit":
                break
            try:
                answer = handle(peer, request)
            except Exception as exc:  # report it to the test, keep serving
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    finally:
        stopping.set()
        spinner.join(timeout=5.0)
        executor.remove_node(peer)
        peer.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
