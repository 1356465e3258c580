"""The ament_python package around shadow_dog: the rclpy adapter (on a fake rclpy, since rclpy cannot be installed
here), the parameters file, package.xml, and (slow) a real `colcon build` with colcon-core + colcon-ros from PyPI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from runtime_fakes import EOS_ID, SUFFIX, bigram_decoder, tiny_tokenizer, write_export_dir
from shadow_dog import ros_node
from shadow_dog.config import PARAMETER_DOCS, NodeConfig, load_params_file, parameter_defaults
from shadow_edge.runtime.grammar import action_vocabulary

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ros2_ws" / "src" / "shadow_dog"


# -- a fake rclpy: just what the adapter touches ---------------------------------------------------------------------------


class _Msg:
    def __repr__(self) -> str:
        return f"{type(self).__name__}({vars(self)})"


class String(_Msg):
    def __init__(self):
        self.data = ""


class Bool(_Msg):
    def __init__(self):
        self.data = False


class Empty(_Msg):
    pass


class Vector3(_Msg):
    def __init__(self):
        self.x = self.y = self.z = 0.0


class Twist(_Msg):
    def __init__(self):
        self.linear, self.angular = Vector3(), Vector3()


class KeyValue(_Msg):
    def __init__(self):
        self.key = self.value = ""


class DiagnosticStatus(_Msg):
    def __init__(self):
        self.level = b"\x00"
        self.name = self.message = self.hardware_id = ""
        self.values = []


class DiagnosticArray(_Msg):
    def __init__(self):
        self.header = types.SimpleNamespace(stamp=None)
        self.status = []


class Publisher:
    def __init__(self, kind, topic):
        self.kind, self.topic, self.sent = kind, topic, []

    def publish(self, msg):
        assert isinstance(msg, self.kind), (msg, self.kind)
        self.sent.append(msg)


class FakeNode:
    overrides: dict = {}  # what a launch file's parameters would set
    last: FakeNode | None = None

    def __init__(self, name):
        self.name = name
        self.params, self.publishers, self.subscriptions = {}, {}, {}
        self.destroyed = False
        FakeNode.last = self

    def declare_parameter(self, name, default):
        assert name not in self.params, f"{name} declared twice"
        value = self.overrides.get(name, default)
        assert type(value) is type(default), f"{name}: ROS 2 refuses {value!r} for a {type(default).__name__}"
        self.params[name] = value

    def get_parameter(self, name):
        return types.SimpleNamespace(value=self.params[name])

    def create_publisher(self, kind, topic, depth):
        self.publishers[topic] = Publisher(kind, topic)
        return self.publishers[topic]

    def create_subscription(self, kind, topic, callback, depth):
        self.subscriptions[topic] = (kind, callback)

    def get_logger(self):
        import logging

        return logging.getLogger("fake_rclpy")

    def get_clock(self):
        stamp = types.SimpleNamespace(sec=1, nanosec=2)
        return types.SimpleNamespace(now=lambda: types.SimpleNamespace(to_msg=lambda: stamp))

    def destroy_node(self):
        self.destroyed = True

    def send(self, topic, msg):
        self.subscriptions[topic][1](msg)


@pytest.fixture()
def fake_rclpy(monkeypatch):
    state = {"initialised": False, "spin": None}
    rclpy = types.ModuleType("rclpy")
    rclpy.init = lambda args=None: state.update(initialised=True)
    rclpy.ok = lambda: state["initialised"]
    rclpy.shutdown = lambda: state.update(initialised=False)
    rclpy.spin = lambda node: state["spin"](node)
    node_mod = types.ModuleType("rclpy.node")
    node_mod.Node = FakeNode
    rclpy.node = node_mod
    modules = {"rclpy": rclpy, "rclpy.node": node_mod}
    for pkg, classes in {
        "std_msgs": (String, Bool, Empty),
        "geometry_msgs": (Twist, Vector3),
        "diagnostic_msgs": (DiagnosticArray, DiagnosticStatus, KeyValue),
    }.items():
        top, msg = types.ModuleType(pkg), types.ModuleType(f"{pkg}.msg")
        for cls in classes:
            setattr(msg, cls.__name__, cls)
        top.msg = msg
        modules[pkg], modules[f"{pkg}.msg"] = top, msg
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(FakeNode, "overrides", {})
    return state


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = tiny_tokenizer()
    ids = action_vocabulary(tokenizer, EOS_ID)
    script = [*tokenizer.encode("move x=2", add_special_tokens=False).ids, EOS_ID]
    start = tokenizer.encode(SUFFIX, add_special_tokens=False).ids[-1]
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    return write_export_dir(
        tmp_path_factory.mktemp("model"),
        tokenizer,
        ids,
        lambda p: bigram_decoder(p, vocab, ids, script, start_id=start),
    )


def test_adapter_declares_every_parameter_and_drives_cmd_vel(fake_rclpy, model_dir):
    FakeNode.overrides = {
        "model_dir": str(model_dir),
        "provider": "cpu",
        "threads": 1,
        "control_period_s": 0.02,
    }
    node, logic, recorder = ros_node.build(ros_node._import_ros())
    assert recorder is None
    assert set(node.params) == set(parameter_defaults())
    assert logic.config.control_period_s == 0.02 and logic.commander is not None
    assert set(node.subscriptions) == {"~/command_text", "~/stop", "~/estop", "~/heartbeat"}
    assert {"/cmd_vel", "~/program", "~/heard", "/diagnostics"} <= set(node.publishers)
    msg = String()
    msg.data = "walk two metres"
    node.send("~/command_text", msg)
    assert logic.process_next()
    twist = node.publishers["/cmd_vel"].sent[-1]
    assert (twist.linear.x, twist.linear.y, twist.angular.z) == (0.5, 0.0, 0.0)
    assert '"program": "move x=2"' in node.publishers["~/program"].sent[-1].data
    node.send("~/stop", Empty())
    assert node.publishers["/cmd_vel"].sent[-1].linear.x == 0.0
    logic.tick()
    (model, _, _) = node.publishers["/diagnostics"].sent[-1].status
    assert model.level == b"\x00" and {kv.key: kv.value for kv in model.values}["model_loaded"] == "true"
    bad = types.SimpleNamespace(data=b"\x00\xff")  # not a str: refused, never executed
    node.send("~/command_text", bad)
    assert "not a std_msgs/String" in node.publishers["~/program"].sent[-1].data


def test_run_ros_spins_and_publishes_zero_on_shutdown(fake_rclpy, model_dir):
    FakeNode.overrides = {"model_dir": str(model_dir), "provider": "cpu", "threads": 1}

    def spin(node):
        msg = String()
        msg.data = "walk two metres"
        node.send("~/command_text", msg)
        end = time.monotonic() + 10
        while time.monotonic() < end and not any(t.linear.x > 0 for t in node.publishers["/cmd_vel"].sent):
            time.sleep(0.01)
        raise KeyboardInterrupt  # Ctrl-C while walking

    fake_rclpy["spin"] = spin
    assert ros_node.run_ros() == 0
    sent = FakeNode.last.publishers["/cmd_vel"].sent
    assert any(t.linear.x > 0 for t in sent) and sent[-1].linear.x == 0.0
    assert FakeNode.last.destroyed and not fake_rclpy["initialised"]


def test_without_rclpy_the_ros_transport_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "rclpy", None)  # import rclpy -> ImportError
    with pytest.raises(ros_node.RclpyUnavailable, match="--transport dds"):
        ros_node._import_ros()
    from shadow_dog.main import main

    assert main(["--transport", "ros"]) == 1


# -- package files -----------------------------------------------------------------------------------------------------------


def test_params_file_documents_every_parameter_with_its_default():
    path = PACKAGE / "config" / "shadow_dog.yaml"
    params = load_params_file(path)
    defaults = parameter_defaults()
    assert params == defaults  # every parameter, each at its default, types as declared
    assert all(type(params[k]) is type(v) for k, v in defaults.items())
    text = path.read_text(encoding="utf-8")
    for name in defaults:
        assert f"    # {PARAMETER_DOCS[name]}\n    {name}:" in text, (
            f"{name} is not documented in {path.name}"
        )
    assert NodeConfig.from_dict(params) == NodeConfig()
    assert set(yaml.safe_load(text)) == {"shadow_dog"}


def test_package_xml_and_setup():
    root = ET.parse(PACKAGE / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "shadow_dog"
    assert {"rclpy", "std_msgs", "geometry_msgs", "diagnostic_msgs"} <= {
        e.text for e in root.iter("exec_depend")
    }
    assert root.find("export/build_type").text == "ament_python"
    assert (PACKAGE / "resource" / "shadow_dog").is_file()
    assert "install_scripts=$base/lib/shadow_dog" in (PACKAGE / "setup.cfg").read_text()
    assert "shadow_dog_node = shadow_dog.ros_node:main" in (PACKAGE / "setup.py").read_text()
    compile(
        (PACKAGE / "launch" / "shadow_dog.launch.py").read_text(), "shadow_dog.launch.py", "exec"
    )  # ROS 2's launch package is not installable here: it must at least be valid Python


@pytest.mark.slow
def test_colcon_build(tmp_path):
    env = {**os.environ, "COLCON_VENV": os.environ.get("COLCON_VENV", str(ROOT / "build" / "colcon-venv"))}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_colcon_build.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "colcon build OK" in result.stdout
