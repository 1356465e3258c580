"""`shadow-dog --transport dds` for real, between two processes on loopback.

The node runs in a subprocess on a real (scripted) export directory; this process is a plain DDS peer that speaks
ROS 2's conventions the way any ROS 2 node would: it publishes a std_msgs/String command and sees a
geometry_msgs/Twist leave, the JSON record on ~/program, diagnostics, Go2 sport requests, and zero velocity on stop
and on SIGTERM. Cyclone is bound to `lo`, multicast off, the only peer 127.0.0.1, on a domain of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("cyclonedds")

from runtime_fakes import CYCLONE_LOOPBACK, scripted_export  # noqa: E402

PROGRAM = "move x=1"  # the scripted model answers every command with this: 2 s at 0.5 m/s


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return scripted_export(tmp_path_factory.mktemp("model"), PROGRAM)


@pytest.fixture(scope="module")
def dds_env(tmp_path_factory):
    xml = CYCLONE_LOOPBACK
    domain = 150 + os.getpid() % 80  # a domain of its own: other test runs on this machine do not interfere
    env = {**os.environ, "CYCLONEDDS_URI": xml.as_uri(), "ROS_DOMAIN_ID": str(domain)}
    old = {k: os.environ.get(k) for k in ("CYCLONEDDS_URI", "ROS_DOMAIN_ID")}
    os.environ.update({k: env[k] for k in old})  # Cyclone reads them when this process joins the domain
    yield env, domain
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class Peer:
    """The other side: a ROS 2-conventions DDS participant in this test process."""

    def __init__(self, domain: int) -> None:
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic
        from shadow_dog.dds_transport import ros_default_qos
        from shadow_dog.dds_types import Bool_, DiagnosticArray_, Empty_, Request_, String_, Twist_

        qos = ros_default_qos(depth=100)
        self.dp = DomainParticipant(domain)

        def reader(name, kind):
            return DataReader(self.dp, Topic(self.dp, name, kind), qos)

        def writer(name, kind):
            return DataWriter(self.dp, Topic(self.dp, name, kind), qos)

        self.command = writer("rt/shadow_dog/command_text", String_)
        self.stop = writer("rt/shadow_dog/stop", Empty_)
        self.estop = writer("rt/shadow_dog/estop", Bool_)
        self.cmd_vel = reader("rt/cmd_vel", Twist_)
        self.program = reader("rt/shadow_dog/program", String_)
        self.diagnostics = reader("rt/diagnostics", DiagnosticArray_)
        self.sport = reader("rt/api/sport/request", Request_)
        self.types = {"String_": String_, "Empty_": Empty_, "Bool_": Bool_}
        self.twists: list[tuple[float, float, float]] = []
        self.records: list[dict] = []
        self.diags: list = []
        self.sports: list = []

    def poll(self) -> None:
        self.twists += [(s.linear.x, s.linear.y, s.angular.z) for s in self.cmd_vel.take(N=100)]
        self.records += [json.loads(s.data) for s in self.program.take(N=100)]
        self.diags += self.diagnostics.take(N=100)
        self.sports += self.sport.take(N=100)

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.poll()
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_matched(self, writer, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if writer.get_publication_matched_status().current_count > 0:
                return
            time.sleep(0.02)
        raise AssertionError("the node never subscribed to the command topic")


def start_node(env, model_dir, *params):
    args = [sys.executable, "-m", "shadow_dog.main", "--transport", "dds", "--model-dir", str(model_dir)]
    for p in ("control_period_s=0.05", "diagnostics_period_s=0.3", "provider=cpu", "threads=1", *params):
        args += ["-p", p]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_string_command_in_twist_out_stop_and_sigterm(dds_env, model_dir):
    env, domain = dds_env
    proc = start_node(env, model_dir)
    try:
        peer = Peer(domain)
        peer.wait_for(lambda: peer.diags, 90.0, "diagnostics from the node")  # start-up, on a loaded machine
        model_status = peer.diags[-1].status[0]
        values = {kv.key: kv.value for kv in model_status.values}
        assert model_status.name == "shadow_dog: model" and values["model_loaded"] == "true"
        assert values["provider"] == "CPUExecutionProvider"
        peer.wait_matched(peer.command)

        from shadow_dog.dds_types import Bool_, Empty_, String_

        sent = time.monotonic()
        peer.command.write(String_("walk one metre"))
        peer.wait_for(lambda: any(t[0] > 0 for t in peer.twists), 5.0, "a moving Twist")
        first_twist = time.monotonic() - sent
        assert (0.5, 0.0, 0.0) in peer.twists
        peer.wait_for(lambda: peer.records, 2.0, "the ~/program record")
        record = peer.records[-1]
        assert record["text"] == "walk one metre" and record["program"] == PROGRAM and record["executed"]
        assert record["latencies_ms"]["model"] > 0 and record["latencies_ms"]["node"] is not None
        assert first_twist < 2.0
        # the segment ends by itself: 2 s, then zero
        peer.wait_for(lambda: peer.twists[-1] == (0.0, 0.0, 0.0), 4.0, "zero velocity at the segment end")

        # the stop topic halts a running segment
        peer.twists.clear()
        peer.command.write(String_("walk one metre again"))
        peer.wait_for(lambda: any(t[0] > 0 for t in peer.twists), 5.0, "moving again")
        peer.stop.write(Empty_())
        peer.wait_for(lambda: peer.twists[-1] == (0.0, 0.0, 0.0), 1.0, "zero after the stop topic")
        time.sleep(0.3)
        peer.poll()
        assert peer.twists[-1] == (0.0, 0.0, 0.0)

        # e-stop: commands are refused while it is engaged
        peer.estop.write(Bool_(True))
        time.sleep(0.2)
        peer.records.clear()
        peer.twists.clear()
        peer.command.write(String_("walk while e-stopped"))
        peer.wait_for(lambda: peer.records, 5.0, "the refused record")
        assert peer.records[-1]["reason"] == "e-stop engaged: nothing executed"
        assert not any(t != (0.0, 0.0, 0.0) for t in peer.twists)
        peer.estop.write(Bool_(False))
        time.sleep(0.2)

        # SIGTERM while moving: zero velocity on the way out, exit 0
        peer.twists.clear()
        peer.command.write(String_("walk one last metre"))
        peer.wait_for(lambda: any(t[0] > 0 for t in peer.twists), 5.0, "moving before SIGTERM")
        code, err = finish(proc)
        peer.wait_for(lambda: peer.twists[-1] == (0.0, 0.0, 0.0), 2.0, "zero velocity at shutdown")
        assert code == 0, err
        assert "ready: dds domain" in err
    finally:
        finish(proc)


def test_go2_sport_requests_over_dds(dds_env, model_dir):
    env, domain = dds_env
    proc = start_node(env, model_dir, "go2_sport_output=true")
    try:
        peer = Peer(domain)
        peer.wait_for(lambda: peer.diags, 90.0, "diagnostics from the node")  # start-up, on a loaded machine
        peer.wait_matched(peer.command)
        from shadow_dog.dds_types import String_

        peer.command.write(String_("walk one metre"))
        peer.wait_for(lambda: any(r.header.identity.api_id == 1003 for r in peer.sports), 5.0, "StopMove")
        moves = [r for r in peer.sports if r.header.identity.api_id == 1008]
        assert moves and json.loads(moves[0].parameter) == {"x": 0.5, "y": 0.0, "z": 0.0}
        assert len({r.header.identity.id for r in peer.sports}) == len(peer.sports)
    finally:
        code, err = finish(proc)
        assert code == 0, err


def test_bad_parameters_exit_2_with_a_message(dds_env, model_dir):
    env, _ = dds_env
    proc = start_node(env, model_dir, "cruise_vx=3")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "cruise_vx" in err and "Traceback" not in err


def test_wire_type_names_follow_ros2():
    from shadow_dog import dds_types as t

    assert t.String_.__idl_typename__ == "std_msgs::msg::dds_::String_"
    assert t.Twist_.__idl_typename__ == "geometry_msgs::msg::dds_::Twist_"
    assert t.Vector3_.__idl_typename__ == "geometry_msgs::msg::dds_::Vector3_"
    assert t.DiagnosticArray_.__idl_typename__ == "diagnostic_msgs::msg::dds_::DiagnosticArray_"
    assert t.Request_.__idl_typename__ == "unitree_api::msg::dds_::Request_"
    assert t.dds_topic("/shadow_dog/command_text") == "rt/shadow_dog/command_text"
    # XCDR1 little-endian encapsulation, then three float64 per Vector3 in .msg order
    data = t.Twist_(t.Vector3_(1.0, 2.0, 3.0), t.Vector3_(4.0, 5.0, 6.0)).serialize()
    assert data[:4] == b"\x00\x01\x00\x00" and len(data) == 4 + 6 * 8
