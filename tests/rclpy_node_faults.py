"""The rclpy node with one injected fault, for the real-rclpy tests: the command text "kill the model worker" ends
the model worker thread inside the model call, the way an uncaught BaseException would (SystemExit raised from
`Commander.run`). Everything else is the real `shadow_dog.ros_node.main`. Run with the ROS venv's python, arguments
as for `shadow_dog_node`."""

from __future__ import annotations

from shadow_dog.ros_node import main
from shadow_edge.runtime.commander import Commander

KILL_TEXT = "kill the model worker"
_run = Commander.run


def run(self: Commander, text, spoken=False, alternatives=()):  # noqa: ANN001, ANN201
    if text == KILL_TEXT:
        raise SystemExit("injected: the model worker is killed")
    return _run(self, text, spoken, alternatives)


Commander.run = run  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
