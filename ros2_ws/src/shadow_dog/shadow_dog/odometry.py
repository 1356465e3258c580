"""Where the robot is, from its odometry, and how fresh that is: what closed-loop motion needs.

Transports hand every odometry message (nav_msgs/Odometry on `odom_topic`, or the Go2's own
`unitree_go/SportModeState` on `sportmodestate_topic`) to `OdometryTracker.update` as a planar pose (x, y, yaw in
the odometry frame) stamped with the node's clock on arrival. The tracker unwraps the yaw (the Go2's IMU yaw jumps
at +-pi; a 360 degree turn must read as one), refuses non-finite poses, and says whether the latest pose is fresh
enough (`odom_timeout_s`) to steer by; otherwise the executor falls back to timed, open-loop motion.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from shadow_edge.runtime.safety import MotionSegment


@dataclass(frozen=True)
class Pose2D:
    """A planar pose in the odometry frame: x, y in metres, yaw in radians, counter-clockwise, unwrapped."""

    x: float
    y: float
    yaw: float


def segment_end(pose: Pose2D, segment: MotionSegment) -> Pose2D:
    """The pose after holding the segment's body-frame twist for its duration (exact for a constant twist).

    The simulator's scoring (`shadow_edge.sim.sim_task`) has its own copy on purpose: it checks the node."""
    vx, vy, w, t = segment.vx, segment.vy, segment.vyaw, segment.duration_s
    yaw0, yaw1 = pose.yaw, pose.yaw + w * t
    if abs(w * t) < 1e-9:
        c, s = math.cos(yaw0), math.sin(yaw0)
        return Pose2D(pose.x + (c * vx - s * vy) * t, pose.y + (s * vx + c * vy) * t, yaw1)
    ds = (math.sin(yaw1) - math.sin(yaw0)) / w
    dc = (math.cos(yaw0) - math.cos(yaw1)) / w
    return Pose2D(pose.x + vx * ds - vy * dc, pose.y + vx * dc + vy * ds, yaw1)


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of a unit quaternion, in (-pi, pi]."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class OdometryTracker:
    """The latest odometry pose with its arrival time; thread-safe (transport callbacks write, the control loop
    reads)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pose: Pose2D | None = None
        self._stamp = -math.inf
        self._raw_yaw = 0.0
        self.source = ""
        self.received = 0
        self.refused = 0

    def update(self, x: float, y: float, yaw: float, now: float, source: str = "odom") -> bool:
        """One odometry reading; False (and ignored) when it is not a finite pose, or when it comes from a second
        source while the first one is still fresh."""
        try:
            values = (float(x), float(y), float(yaw))
        except (TypeError, ValueError):
            values = (math.nan,) * 3
        if not all(math.isfinite(v) for v in values):
            with self._lock:
                self.refused += 1
            return False
        x, y, raw = values
        with self._lock:
            if self._pose is not None and source != self.source and now - self._stamp <= self.timeout_s:
                return False  # two sources have two frames: keep to the one in use while it is fresh
            if self._pose is None or source != self.source:
                unwrapped = raw  # a new source has its own frame: start the unwrapping afresh
            else:
                step = (raw - self._raw_yaw + math.pi) % (2 * math.pi) - math.pi
                unwrapped = self._pose.yaw + step
            self._raw_yaw = raw
            self._pose = Pose2D(x, y, unwrapped)
            self._stamp = now
            self.source = source
            self.received += 1
        return True

    def pose(self, now: float) -> Pose2D | None:
        """The latest pose if it arrived within `timeout_s` of `now`, else None (absent or stale)."""
        with self._lock:
            if self._pose is None or now - self._stamp > self.timeout_s:
                return None
            return self._pose

    def state(self, now: float) -> str:
        """'fresh', 'stale' or 'absent' (for diagnostics)."""
        with self._lock:
            if self._pose is None:
                return "absent"
            return "fresh" if now - self._stamp <= self.timeout_s else "stale"

    def age(self, now: float) -> float:
        with self._lock:
            return now - self._stamp
