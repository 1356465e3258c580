"""`ros2 launch shadow_dog shadow_dog.launch.py [params_file:=FILE] [model_dir:=DIR]`

Starts the shadow_dog node with config/shadow_dog.yaml (or `params_file`); `model_dir` overrides the file's
model_dir when given.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _node(context, *args, **kwargs):
    params = [LaunchConfiguration("params_file").perform(context)]
    model_dir = LaunchConfiguration("model_dir").perform(context)
    if model_dir:
        params.append({"model_dir": model_dir})
    return [
        Node(
            package="shadow_dog",
            executable="shadow_dog_node",
            name="shadow_dog",
            output="screen",
            emulate_tty=True,
            parameters=params,
        )
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("shadow_dog"), "config", "shadow_dog.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"),
            DeclareLaunchArgument(
                "model_dir", default_value="", description="shadow-export output directory"
            ),
            OpaqueFunction(function=_node),
        ]
    )
