"""The node on Cyclone DDS directly, speaking ROS 2's wire conventions: no rclpy needed.

ROS 2 nodes on the same domain see these topics as ordinary ROS topics (`ros2 topic echo /cmd_vel`): DDS topic
`rt/<ros name>`, types `pkg::msg::dds_::Type_` (see `dds_types`), and ROS 2's default QoS (reliable, volatile, keep
last 10). The Go2 sport requests go to `rt/api/sport/request` as Unitree's own SDK sends them.

Which network interfaces Cyclone uses is Cyclone's configuration (`CYCLONEDDS_URI`), as for any ROS 2 node; the
domain is `ROS_DOMAIN_ID` (default 0) unless given.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from cyclonedds.core import Listener, Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from .config import NodeConfig
from .dds_types import (
    Bool_,
    DiagnosticArray_,
    DiagnosticStatus_,
    Empty_,
    Header_,
    KeyValue_,
    Odometry_,
    Request_,
    RequestHeader_,
    RequestIdentity_,
    SportModeState_,
    String_,
    Time_,
    Twist_,
    Vector3_,
    dds_topic,
)
from .logic import DogNodeLogic
from .odometry import yaw_from_quaternion
from .outputs import DiagnosticStatus, SportRequest

log = logging.getLogger(__name__)

ROS_DEFAULT_DEPTH = 10


def ros_default_qos(depth: int = ROS_DEFAULT_DEPTH) -> Qos:
    """rmw_qos_profile_default: reliable, volatile, keep last `depth`."""
    return Qos(
        Policy.Reliability.Reliable(duration(milliseconds=100)),
        Policy.Durability.Volatile,
        Policy.History.KeepLast(depth),
    )


def domain_from_env() -> int:
    value = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
    try:
        domain = int(value)
    except ValueError:
        raise ValueError(f"ROS_DOMAIN_ID must be an integer, got {value!r}") from None
    if not 0 <= domain <= 232:
        raise ValueError(f"ROS_DOMAIN_ID must be in [0, 232], got {domain}")
    return domain


class DdsTransport:
    """`NodeOutputs` on DDS writers, and readers that feed a `DogNodeLogic` (see `attach`)."""

    def __init__(self, config: NodeConfig, domain_id: int | None = None) -> None:
        self.config = config
        self.domain_id = domain_from_env() if domain_id is None else domain_id
        self.participant = DomainParticipant(self.domain_id)
        self.qos = ros_default_qos()
        self._topics: dict[str, Topic] = {}
        self._readers: list[DataReader] = []
        self._cmd_vel = self._writer(config.cmd_vel_topic, Twist_)
        self._program = self._writer(config.program_topic, String_)
        self._heard = self._writer(config.heard_topic, String_)
        self._remote = self._writer(config.remote_topic, String_)
        self._answer = self._writer(config.answer_topic, String_)
        self._sound = self._writer(config.sound_topic, String_)
        self._diagnostics = self._writer(config.diagnostics_topic, DiagnosticArray_)
        self._sport = self._writer(config.sport_request_topic, Request_) if config.go2_sport_output else None

    def topic_name(self, ros_topic: str) -> str:
        return dds_topic(self.config.resolve(ros_topic))

    def _topic(self, ros_topic: str, kind: type) -> Topic:
        name = self.topic_name(ros_topic)
        if name not in self._topics:
            self._topics[name] = Topic(self.participant, name, kind)
        return self._topics[name]

    def _writer(self, ros_topic: str, kind: type) -> DataWriter:
        return DataWriter(self.participant, self._topic(ros_topic, kind), self.qos)

    # -- inputs ------------------------------------------------------------------------------------------------------

    def attach(self, logic: DogNodeLogic) -> None:
        """Subscribe the command, stop, e-stop and heartbeat topics and hand what arrives to `logic`."""
        config = self.config
        self._subscribe(
            config.command_topic, String_, lambda s: logic.submit_text(s.data, source="text"), logic
        )
        self._subscribe(config.stop_topic, Empty_, lambda s: logic.stop("stop topic"), logic)
        self._subscribe(config.estop_topic, Bool_, lambda s: logic.set_estop(bool(s.data)), logic)
        self._subscribe(config.heartbeat_topic, Empty_, lambda s: logic.heartbeat(), logic)
        self._subscribe(config.odom_topic, Odometry_, lambda s: _on_odometry(logic, s), logic)
        self._subscribe(
            config.sportmodestate_topic, SportModeState_, lambda s: _on_sport_state(logic, s), logic
        )

    def _subscribe(
        self, ros_topic: str, kind: type, handle: Callable[[Any], None], logic: DogNodeLogic
    ) -> None:
        name = self.topic_name(ros_topic)

        def on_data_available(reader: DataReader) -> None:
            for _ in range(
                64
            ):  # bounded: a flood is handled over several callbacks, never in an endless loop
                try:
                    samples = reader.take(N=16)
                except (
                    Exception
                ) as exc:  # a sample that does not deserialize (bad UTF-8, truncated): refuse it
                    logic.refuse_input(
                        f"<undecodable {kind.__name__} on {name}>", f"malformed message: {exc}", name
                    )
                    continue
                if not samples:
                    return
                for sample in samples:
                    if not isinstance(sample, kind):  # an invalid-data sample (a disposed instance)
                        continue
                    try:
                        handle(sample)
                    except Exception:
                        log.exception("handling a message on %s failed", name)

        reader = DataReader(
            self.participant,
            self._topic(ros_topic, kind),
            self.qos,
            listener=Listener(on_data_available=on_data_available),
        )
        self._readers.append(reader)

    # -- NodeOutputs -------------------------------------------------------------------------------------------------

    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        self._cmd_vel.write(Twist_(linear=Vector3_(vx, vy, 0.0), angular=Vector3_(0.0, 0.0, vyaw)))

    def sport_request(self, request: SportRequest) -> None:
        if self._sport is None:
            return
        header = RequestHeader_(identity=RequestIdentity_(id=request.request_id, api_id=request.api_id))
        self._sport.write(Request_(header=header, parameter=request.parameter))

    def program(self, record: dict[str, Any]) -> None:
        self._program.write(String_(json.dumps(record, ensure_ascii=False)))

    def heard(self, text: str) -> None:
        self._heard.write(String_(text))

    def remote(self, record: dict[str, Any]) -> None:
        self._remote.write(String_(json.dumps(record, ensure_ascii=False)))

    def answer(self, text: str) -> None:
        self._answer.write(String_(text))

    def sound(self, name: str, count: int) -> None:
        self._sound.write(String_(f"{name} n={count}"))

    def diagnostics(self, statuses: list[DiagnosticStatus]) -> None:
        now = time.time()
        header = Header_(stamp=Time_(sec=int(now), nanosec=int((now % 1) * 1e9)))
        self._diagnostics.write(
            DiagnosticArray_(
                header=header,
                status=[
                    DiagnosticStatus_(
                        level=s.level,
                        name=s.name,
                        message=s.message,
                        hardware_id=s.hardware_id,
                        values=[KeyValue_(k, v) for k, v in s.values.items()],
                    )
                    for s in statuses
                ],
            )
        )

    def close(self) -> None:
        """Stop delivering input (readers first, so nothing reaches a logic that is shutting down)."""
        for reader in self._readers:
            reader.set_listener(None)
        self._readers.clear()


def _on_odometry(logic: DogNodeLogic, message: Odometry_) -> None:
    pose = message.pose.pose
    q = pose.orientation
    logic.odometry_input(pose.position.x, pose.position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w), "odom")


def _on_sport_state(logic: DogNodeLogic, message: SportModeState_) -> None:
    """The Go2's sport-mode state: position in its odometry frame, heading from the IMU's roll-pitch-yaw."""
    position, rpy = message.position, message.imu_state.rpy
    logic.odometry_input(position[0], position[1], rpy[2], "sportmodestate")
