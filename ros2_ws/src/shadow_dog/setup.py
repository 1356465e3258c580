"""ament_python build of the shadow_dog ROS 2 package (colcon build)."""

from glob import glob

from setuptools import setup

PACKAGE = "shadow_dog"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="shadow-edge maintainers",
    maintainer_email="shadow-edge@example.invalid",
    description="Speech and text commands to robot-dog actions (ShadowPEFT on the edge).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # `ros2 run shadow_dog shadow_dog_node` / the launch file
            "shadow_dog_node = shadow_dog.ros_node:main",
            # the same logic on Cyclone DDS without rclpy
            "shadow_dog_dds = shadow_dog.main:main",
        ],
    },
)
