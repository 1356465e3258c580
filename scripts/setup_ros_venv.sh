#!/usr/bin/env bash
# A virtual environment with real ROS 2 rclpy (PyPI wheels, Fast DDS) and this project, for the rclpy tests.
#
#   bash scripts/setup_ros_venv.sh [kilted|jazzy]      -> build/ros-<distro>-venv (default: kilted)
#
# The ROS wheels install a .pth bootstrapper that sets LD_LIBRARY_PATH and re-executes the interpreter at every
# Python start in that environment, so they live in a venv of their own, never in the main environment. The project
# goes in editable with its `runtime` extra, plus what the node needs at run time. The stamp includes
# pyproject.toml, so a changed dependency list reinstalls. Idempotent: a venv whose stamp
# matches these pins is left as it is. No ros2 CLI, launch or rmw_cyclonedds_cpp wheels exist on PyPI: the node runs
# on rmw_fastrtps_cpp (the [fastrtps] extra), which the loopback profile in ros2_ws/src/shadow_dog/config confines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

distro="${1:-kilted}"
case "$distro" in
    kilted) ros=("ros-kilted-rclpy[fastrtps]==9.1.2" ros-kilted-std-msgs==5.5.1 ros-kilted-geometry-msgs==5.5.1
                 ros-kilted-diagnostic-msgs==5.5.1 ros-kilted-nav-msgs==5.5.1) ;;
    jazzy) ros=("ros-jazzy-rclpy[fastrtps]==7.1.6" ros-jazzy-std-msgs==5.3.6 ros-jazzy-geometry-msgs==5.3.6
                ros-jazzy-diagnostic-msgs==5.3.6 ros-jazzy-nav-msgs==5.3.6) ;;
    *) echo "usage: $0 [kilted|jazzy]" >&2; exit 2 ;;
esac
# What the node imports at run time beyond the project's `runtime` extra: the DDS transport, the parameters file.
runtime=("cyclonedds>=0.10" "pyyaml>=6")

venv="build/ros-$distro-venv"
stamp="$venv/.shadow-edge-stamp"
want="$(printf '%s\n' "${ros[@]}" "${runtime[@]}" | cat - pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    echo "$venv: up to date"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip "setuptools>=68" wheel
"$venv/bin/python" -m pip install -q "${ros[@]}" "${runtime[@]}"
log="$venv/editable-install.log"
# The project itself, editable, with its `runtime` extra (onnxruntime, tokenizers, the number normaliser...).
"$venv/bin/python" -m pip install -q --no-build-isolation -e '.[runtime]' >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
# Check it imports as the node will (the bootstrapper re-executes the interpreter once here).
"$venv/bin/python" -c "import rclpy, std_msgs.msg, geometry_msgs.msg, diagnostic_msgs.msg, nav_msgs.msg, shadow_dog.ros_node, shadow_edge.runtime.commander"
echo "$want" >"$stamp"
echo "$venv: ready ($distro)"
