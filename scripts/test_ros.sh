#!/usr/bin/env bash
# The real-rclpy suite (`pytest -m ros`): sets up the ROS venv (scripts/setup_ros_venv.sh, idempotent) and runs
# tests/dog/test_dog_rclpy.py and tests/dog/test_dog_dds_rclpy_interop.py against it, all DDS on loopback.
#
#   bash scripts/test_ros.sh            # ROS 2 Kilted (rclpy 9.1.2, Fast DDS 3)
#   bash scripts/test_ros.sh jazzy      # ROS 2 Jazzy (rclpy 7.1.6, Fast DDS 2.14)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
distro="${1:-kilted}"
mkdir -p build
log="build/ros-$distro-setup.log"
bash scripts/setup_ros_venv.sh "$distro" >"$log" 2>&1 || { grep -v "^WARNING: Location" "$log" >&2; exit 1; }
tail -n 1 "$log"
export SHADOW_ROS_VENV="build/ros-$distro-venv"
python3 -m pytest -q -m ros tests/dog/test_dog_rclpy.py tests/dog/test_dog_dds_rclpy_interop.py
