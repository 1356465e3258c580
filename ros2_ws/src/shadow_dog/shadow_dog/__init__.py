"""shadow_dog: speech and text commands to robot-dog actions, as a ROS 2 node.

`logic.DogNodeLogic` is the node's behaviour without any transport; `dds_transport` runs it on Cyclone DDS with ROS
2's wire conventions (no rclpy needed), `ros_node` on rclpy. `shadow-dog --transport dds|ros` starts either.
"""
