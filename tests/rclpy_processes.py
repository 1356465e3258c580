"""Processes for the real-rclpy tests: the ROS venv's interpreter, the node, and the rclpy peer (tests/rclpy_peer.py).

The venv is `build/ros-kilted-venv` (scripts/setup_ros_venv.sh) unless SHADOW_ROS_VENV names another one (the
Jazzy check sets it). Every process gets `shadow_dog.loopback.loopback_env` on a domain of its own, so DDS stays on
127.0.0.1 and parallel runs do not meet.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shadow_dog.loopback import loopback_env

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).resolve().parent / "rclpy_peer.py"
SPEC_LIMITS = (0.6, 0.4, 1.0)  # |vx|, |vy|, |vyaw| of actions.json


def ros_python() -> Path | None:
    venv = Path(os.environ.get("SHADOW_ROS_VENV", ROOT / "build" / "ros-kilted-venv"))
    python = venv / "bin" / "python"
    return python if python.is_file() else None


def domain_for(offset: int) -> int:
    """A DDS domain of this test run's own (from the pid), so that runs side by side do not meet."""
    return 100 + (os.getpid() * 7 + offset) % 120


class Peer:
    """The rclpy peer process: `request(op=..., ...)` sends one request and returns its answer; `collect()` keeps
    everything received so far in `self.twists`, `self.programs`, `self.diagnostics`, `self.sounds`."""

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(PEER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.twists: list[tuple[float, tuple[float, float, float]]] = []
        self.programs: list[tuple[float, dict]] = []
        self.diagnostics: list[tuple[float, list[dict]]] = []
        self.sounds: list[tuple[float, str]] = []
        ready = self._answer(60.0)
        assert ready.get("ready"), ready

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(
                f"the rclpy peer did not answer within {timeout} s: {self.stderr()}"
            ) from None

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:]

    def request(self, timeout: float = 30.0, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._answer(timeout + float(request.get("timeout", 0.0)))
        assert answer.get("ok"), answer
        return answer

    def collect(self) -> None:
        got = self.request(op="take")
        self.twists += [(t, tuple(v)) for t, v in got["twists"]]
        self.programs += [(t, v) for t, v in got["programs"]]
        self.diagnostics += [(t, v) for t, v in got["diagnostics"]]
        self.sounds += [(t, v) for t, v in got["sounds"]]

    def wait_for(self, predicate, timeout: float, what: str) -> None:  # noqa: ANN001
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.collect()
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def clear(self) -> None:
        self.collect()
        self.twists, self.programs, self.diagnostics, self.sounds = [], [], [], []

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class NodeProcess:
    """The node in its own process (stderr to a log file, read by `log()`)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def rclpy_node(python: Path, env: dict[str, str], log_path: Path, **params: Any) -> NodeProcess:
    """`shadow_dog_node` (the ament entry point) on real rclpy, parameters as `--ros-args -p name:=value`."""
    argv = [str(python), "-m", "shadow_dog.ros_node", "--ros-args"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={json.dumps(value) if not isinstance(value, str) else value}"]
    return NodeProcess(argv, env, log_path)


def rclpy_node_with_faults(python: Path, env: dict[str, str], log_path: Path, **params: Any) -> NodeProcess:
    """The same node with the fault hooks of tests/rclpy_node_faults.py (a command that kills the model worker)."""
    argv = [str(python), str(Path(__file__).resolve().parent / "rclpy_node_faults.py"), "--ros-args"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={json.dumps(value) if not isinstance(value, str) else value}"]
    return NodeProcess(argv, env, log_path)


def dds_node(env: dict[str, str], log_path: Path, *args: str) -> NodeProcess:
    """`shadow-dog --transport dds` (Cyclone DDS, no rclpy) in this environment's interpreter."""
    return NodeProcess([sys.executable, "-m", "shadow_dog.main", "--transport", "dds", *args], env, log_path)


def environment(domain: int) -> dict[str, str]:
    env = loopback_env(domain)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def nonzero(twist: tuple[float, float, float]) -> bool:
    return any(abs(v) > 1e-9 for v in twist)


def within_limits(twist: tuple[float, float, float]) -> bool:
    return all(abs(v) <= limit + 1e-9 for v, limit in zip(twist, SPEC_LIMITS, strict=True))


def cdr_string(data: bytes) -> str:
    """A serialized std_msgs/String (CDR little endian) carrying `data` as is, even if it is not UTF-8."""
    body = len(data + b"\0").to_bytes(4, "little") + data + b"\0"
    return (b"\x00\x01\x00\x00" + body).hex()
