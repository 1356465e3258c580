#!/usr/bin/env bash
# Check that ros2_ws/src/shadow_dog builds with `colcon build` as an ament_python package, without a ROS 2 install:
# colcon-core + colcon-ros from PyPI in a venv (build/colcon-venv, reused), the package copied to a temporary
# workspace, then the installed layout checked (entry points in lib/shadow_dog, launch, config, ament index marker).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COLCON_VENV:-$ROOT/build/colcon-venv}"
if [ ! -x "$VENV/bin/colcon" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q colcon-core colcon-ros
fi
WS="$(mktemp -d)"
trap 'rm -rf "$WS"' EXIT
mkdir -p "$WS/src"
cp -r "$ROOT/ros2_ws/src/shadow_dog" "$WS/src/"
find "$WS/src" -name __pycache__ -prune -exec rm -rf {} +
cd "$WS"
"$VENV/bin/colcon" build >"$WS/build.log" 2>&1 || { cat "$WS/build.log"; exit 1; }
for f in lib/shadow_dog/shadow_dog_node lib/shadow_dog/shadow_dog_dds share/shadow_dog/package.xml \
         share/shadow_dog/launch/shadow_dog.launch.py share/shadow_dog/config/shadow_dog.yaml \
         share/shadow_dog/config/fastdds_loopback.xml share/shadow_dog/config/cyclonedds_loopback.xml \
         share/ament_index/resource_index/packages/shadow_dog \
         share/shadow_dog/hook/ament_prefix_path.dsv; do  # the last one: colcon-ros took it as a ROS package
  [ -e "install/shadow_dog/$f" ] || { echo "missing from the install: $f"; exit 1; }
done
ls install/shadow_dog/lib/python3*/site-packages/shadow_dog/ros_node.py >/dev/null
echo "colcon build OK: $(ls install/shadow_dog/lib/shadow_dog | tr '\n' ' ')"
