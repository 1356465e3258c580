"""The simulated Go2 on DDS: what the node publishes reaches it exactly as it would reach the robot.

`SimGo2DdsBridge` joins the node's domain and subscribes the node's `/cmd_vel` (`geometry_msgs::msg::dds_::Twist_`),
the Go2 sport requests (`rt/api/sport/request`, `unitree_api::msg::dds_::Request_`) and the `~/sound` output
(`bark n=2`), with the same topic names (from a `NodeConfig`) and QoS as `shadow_dog.dds_transport`. A thread steps
the physics in real time (`realtime_factor` 1.0: the node runs on the wall clock), so that the node's timing -- its
control period, the segment ends, the trailing zeros, the sim's command timeout -- acts on the dog as on a real one.

With `odometry` (the default) it publishes the dog's state as a Go2 does, every policy tick (50 Hz): the sport-mode
state on `rt/sportmodestate` (`unitree_go::msg::dds_::SportModeState_`: position, IMU roll-pitch-yaw with the yaw
wrapped to (-pi, pi], body velocity, yaw rate) and a nav_msgs/Odometry on the node's `odom_topic` (what a Go2's
ROS 2 bridge or a rclpy node subscribes to).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time

from cyclonedds.core import Listener
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from shadow_dog.config import NodeConfig
from shadow_dog.dds_transport import domain_from_env, ros_default_qos
from shadow_dog.dds_types import (
    Header_,
    IMUState_,
    Odometry_,
    Point_,
    Pose_,
    PoseWithCovariance_,
    Quaternion_,
    Request_,
    SportModeState_,
    String_,
    Time_,
    TimeSpec_,
    Twist_,
    dds_topic,
)

from .sim_go2 import SimGo2

log = logging.getLogger(__name__)

SOUND_PATTERN = re.compile(r"^\s*([a-z_]+)\s+n=(\d+)\s*$")


class SimGo2DdsBridge:
    """Feeds `sim` from the node's DDS outputs and advances it in real time (`start`/`stop`, or `with`)."""

    def __init__(
        self,
        sim: SimGo2,
        config: NodeConfig | None = None,
        *,
        domain_id: int | None = None,
        realtime_factor: float = 1.0,
        odometry: bool = True,
    ) -> None:
        if not realtime_factor > 0:
            raise ValueError(f"realtime_factor must be > 0, got {realtime_factor!r}")
        self.sim = sim
        self.config = config or NodeConfig(go2_sport_output=True)
        self.realtime_factor = realtime_factor
        self.participant = DomainParticipant(domain_from_env() if domain_id is None else domain_id)
        self.twists_received = 0
        self.last_twist_at = -math.inf  # time.monotonic() of the latest /cmd_vel
        self.sounds: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        qos = ros_default_qos()
        self._readers = [
            self._reader(self.config.cmd_vel_topic, Twist_, self._on_twist, qos),
            self._reader(self.config.sport_request_topic, Request_, self._on_request, qos),
            self._reader(self.config.sound_topic, String_, self._on_sound, qos),
        ]
        self._state_writer: DataWriter | None = None
        self._odom_writer: DataWriter | None = None
        if odometry:
            state_topic = dds_topic(self.config.resolve(self.config.sportmodestate_topic))
            odom_topic = dds_topic(self.config.resolve(self.config.odom_topic))
            self._state_writer = DataWriter(
                self.participant, Topic(self.participant, state_topic, SportModeState_), qos
            )
            self._odom_writer = DataWriter(
                self.participant, Topic(self.participant, odom_topic, Odometry_), qos
            )
        self.states_published = 0

    def _reader(self, ros_topic: str, kind: type, handle, qos) -> DataReader:  # type: ignore[no-untyped-def]
        name = dds_topic(self.config.resolve(ros_topic))

        def on_data_available(reader: DataReader) -> None:
            try:
                samples = reader.take(N=64)
            except Exception as exc:  # a sample that does not deserialize: refused, never acted on
                log.warning("refused an undecodable message on %s: %s", name, exc)
                return
            for sample in samples:
                if isinstance(sample, kind):
                    handle(sample)

        topic = Topic(self.participant, name, kind)
        return DataReader(
            self.participant, topic, qos, listener=Listener(on_data_available=on_data_available)
        )

    def _on_twist(self, twist: Twist_) -> None:
        with self._lock:
            self.twists_received += 1
            self.last_twist_at = time.monotonic()
        self.sim.set_velocity(twist.linear.x, twist.linear.y, twist.angular.z)

    def _on_request(self, request: Request_) -> None:
        identity = request.header.identity
        self.sim.sport_request(int(identity.api_id), request.parameter, int(identity.id))

    def _on_sound(self, message: String_) -> None:
        match = SOUND_PATTERN.match(message.data)
        if match is None:
            log.warning("ignored a sound message %r", message.data)
            return
        with self._lock:
            self.sounds.append((match.group(1), int(match.group(2))))

    # -- the physics thread ------------------------------------------------------------------------------------------

    def start(self) -> SimGo2DdsBridge:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sim_go2", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        for reader in self._readers:
            reader.set_listener(None)

    def __enter__(self) -> SimGo2DdsBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def publish_state(self) -> None:
        """The dog's state as a Go2 publishes it (see the module docstring); the sim's own clock stamps it."""
        if self._state_writer is None or self._odom_writer is None:
            return
        x, y, yaw = self.sim.odometry()
        vx, vy, vyaw = self.sim.velocity()
        t = self.sim.sim_time
        sec, nanosec = int(t), int((t % 1.0) * 1e9)
        state = SportModeState_(
            stamp=TimeSpec_(sec=sec, nanosec=nanosec),
            imu_state=IMUState_(
                quaternion=[math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)], rpy=[0.0, 0.0, yaw]
            ),
            mode=3 if (vx, vy, vyaw) != (0.0, 0.0, 0.0) else 0,
            position=[x, y, self.sim.height()],
            body_height=self.sim.height(),
            velocity=[vx, vy, 0.0],
            yaw_speed=vyaw,
        )
        odom = Odometry_(
            header=Header_(stamp=Time_(sec=sec, nanosec=nanosec), frame_id="odom"),
            child_frame_id="base_link",
            pose=PoseWithCovariance_(
                pose=Pose_(
                    position=Point_(x, y, self.sim.height()),
                    orientation=Quaternion_(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)),
                )
            ),
        )
        self._state_writer.write(state)
        self._odom_writer.write(odom)
        self.states_published += 1

    def _run(self) -> None:
        step = self.sim.tick_s
        wall_start = time.monotonic()
        sim_start = self.sim.sim_time
        while not self._stopping.is_set():
            self.sim.advance(step)
            try:
                self.publish_state()
            except Exception:  # a state that cannot go out must not stop the physics
                log.exception("publishing the simulated state failed")
            ahead = (self.sim.sim_time - sim_start) / self.realtime_factor - (time.monotonic() - wall_start)
            if ahead > 0:
                self._stopping.wait(ahead)
            elif ahead < -1.0:  # fell behind by a second (a stall): re-anchor rather than race
                log.warning("the simulation fell %.1f s behind real time", -ahead)
                wall_start = time.monotonic()
                sim_start = self.sim.sim_time
