"""The ament_python package around shadow_dog: the rclpy adapter's pieces that need no rclpy (the adapter itself runs
on real rclpy in tests/dog/test_dog_rclpy.py), the parameters file, package.xml, and (slow) a real `colcon build`
with colcon-core + colcon-ros from PyPI."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from shadow_dog import ros_node
from shadow_dog.config import PARAMETER_DOCS, NodeConfig, load_params_file, parameter_defaults

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ros2_ws" / "src" / "shadow_dog"


# -- the rclpy adapter without rclpy (real rclpy: tests/dog/test_dog_rclpy.py, `pytest -m ros`) ------------------------


def test_live_parameter_changes_are_checked_like_start_up():
    config = NodeConfig()
    new, reason = ros_node.parameter_change(config, {"cruise_vx": 0.3, "heartbeat_timeout_s": 1.0})
    assert reason == "" and new.cruise_vx == 0.3 and new.heartbeat_timeout_s == 1.0
    assert ros_node.parameter_change(config, {"cruise_vx": 0.9}) == (
        None,
        "SafetyConfig.cruise_vx=0.9 exceeds the spec's speed limit |vx| <= 0.6",
    )
    new, reason = ros_node.parameter_change(config, {"model_dir": "/x", "cmd_vel_topic": "/y"})
    assert new is None and reason.startswith("cmd_vel_topic, model_dir: read at start-up only")
    new, reason = ros_node.parameter_change(config, {"odom_timeout_s": 0.0})
    assert new is None and "odom_timeout_s" in reason


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
    assert {"rclpy", "rcl_interfaces", "std_msgs", "geometry_msgs", "diagnostic_msgs", "nav_msgs"} <= {
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
