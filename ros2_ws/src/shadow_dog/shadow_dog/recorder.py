"""Recording a session to MCAP in ROS 2 format (readable by `mcap`/`mcap-ros2-support`, Foxglove, `ros2 bag`).

`McapRecorder(path, config)` writes every input the node got (commands, stops, e-stops) and every message it sent
(velocities, sport requests, program records, heard text, diagnostics) on the node's ROS topic names with ROS 2
message definitions (cdr encoding), stamped with the wall clock. `RecordingOutputs(inner, recorder)` sends to
`inner` and records the same message; `DogNodeLogic.input_observer = recorder.record_input` records inputs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from .config import NodeConfig
from .outputs import DiagnosticStatus, NodeOutputs, SportRequest

log = logging.getLogger(__name__)

SEP = "\n" + "=" * 80 + "\n"

MSGDEFS: dict[str, str] = {
    "std_msgs/msg/String": "string data",
    "std_msgs/msg/Bool": "bool data",
    "std_msgs/msg/Empty": "",
    "geometry_msgs/msg/Twist": "Vector3  linear\nVector3  angular"
    + SEP
    + "MSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z",
    "diagnostic_msgs/msg/DiagnosticArray": "std_msgs/Header header\nDiagnosticStatus[] status"
    + SEP
    + "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id"
    + SEP
    + "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec"
    + SEP
    + "MSG: diagnostic_msgs/DiagnosticStatus\nbyte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\n"
    "string name\nstring message\nstring hardware_id\nKeyValue[] values"
    + SEP
    + "MSG: diagnostic_msgs/KeyValue\nstring key\nstring value",
    "unitree_api/msg/Request": "RequestHeader header\nstring parameter\nuint8[] binary"
    + SEP
    + "MSG: unitree_api/RequestHeader\nRequestIdentity identity\nRequestLease lease\nRequestPolicy policy"
    + SEP
    + "MSG: unitree_api/RequestIdentity\nint64 id\nint64 api_id"
    + SEP
    + "MSG: unitree_api/RequestLease\nint64 id"
    + SEP
    + "MSG: unitree_api/RequestPolicy\nint32 priority\nbool noreply",
}


class McapRecorder:
    def __init__(self, path: str, config: NodeConfig) -> None:
        try:
            from mcap_ros2.writer import Writer
        except ImportError:
            raise RuntimeError(
                "MCAP recording needs mcap and mcap-ros2-support: pip install 'shadow-edge[ros]'"
            ) from None
        self.config = config
        self._file = open(path, "wb")  # noqa: SIM115 -- closed in close()
        self._writer = Writer(self._file)
        self._schemas = {name: self._writer.register_msgdef(name, text) for name, text in MSGDEFS.items()}
        self._lock = threading.Lock()
        self._closed = False
        self.count = 0

    def write(self, topic: str, datatype: str, message: dict[str, Any]) -> None:
        now = time.time_ns()
        with self._lock:
            if self._closed:
                return
            try:
                self._writer.write_message(
                    topic=self.config.resolve(topic),
                    schema=self._schemas[datatype],
                    message=message,
                    log_time=now,
                    publish_time=now,
                )
                self.count += 1
            except Exception:  # a recording problem must never stop the robot's outputs
                log.exception("recording to MCAP failed on %s", topic)

    def record_input(self, kind: str, value: Any) -> None:
        """What the node received: kind is command | stop | estop | heartbeat."""
        config = self.config
        if kind == "command":
            text = value if isinstance(value, str) else repr(value)[:200]
            self.write(config.command_topic, "std_msgs/msg/String", {"data": text})
        elif kind == "stop":
            self.write(config.stop_topic, "std_msgs/msg/Empty", {})
        elif kind == "estop":
            self.write(config.estop_topic, "std_msgs/msg/Bool", {"data": bool(value)})
        elif kind == "heartbeat":
            self.write(config.heartbeat_topic, "std_msgs/msg/Empty", {})

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.finish()
            self._file.close()


class RecordingOutputs:
    """Sends to `inner`, then records the same message."""

    def __init__(self, inner: NodeOutputs, recorder: McapRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.config = recorder.config

    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        self.inner.twist(vx, vy, vyaw)
        self.recorder.write(
            self.config.cmd_vel_topic,
            "geometry_msgs/msg/Twist",
            {"linear": {"x": vx, "y": vy, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": vyaw}},
        )

    def sport_request(self, request: SportRequest) -> None:
        self.inner.sport_request(request)
        header = {
            "identity": {"id": request.request_id, "api_id": request.api_id},
            "lease": {"id": 0},
            "policy": {"priority": 0, "noreply": False},
        }
        self.recorder.write(
            self.config.sport_request_topic,
            "unitree_api/msg/Request",
            {"header": header, "parameter": request.parameter, "binary": []},
        )

    def _string(self, topic: str, text: str) -> None:
        self.recorder.write(topic, "std_msgs/msg/String", {"data": text})

    def program(self, record: dict[str, Any]) -> None:
        self.inner.program(record)
        self._string(self.config.program_topic, json.dumps(record, ensure_ascii=False))

    def heard(self, text: str) -> None:
        self.inner.heard(text)
        self._string(self.config.heard_topic, text)

    def remote(self, record: dict[str, Any]) -> None:
        self.inner.remote(record)
        self._string(self.config.remote_topic, json.dumps(record, ensure_ascii=False))

    def answer(self, text: str) -> None:
        self.inner.answer(text)
        self._string(self.config.answer_topic, text)

    def sound(self, name: str, count: int) -> None:
        self.inner.sound(name, count)
        self._string(self.config.sound_topic, f"{name} n={count}")

    def diagnostics(self, statuses: list[DiagnosticStatus]) -> None:
        self.inner.diagnostics(statuses)
        now = time.time()
        self.recorder.write(
            self.config.diagnostics_topic,
            "diagnostic_msgs/msg/DiagnosticArray",
            {
                "header": {"stamp": {"sec": int(now), "nanosec": int((now % 1) * 1e9)}, "frame_id": ""},
                "status": [
                    {
                        "level": s.level,
                        "name": s.name,
                        "message": s.message,
                        "hardware_id": s.hardware_id,
                        "values": [{"key": k, "value": v} for k, v in s.values.items()],
                    }
                    for s in statuses
                ],
            },
        )
