"""shadow-edge: ShadowPEFT models from a workstation to a robot.

A thin namespace: the work lives in `shadow_edge.export` (workstation), `shadow_edge.runtime`
(on-device, no torch) and `shadow_edge.calibration` (data).
"""

__version__ = "0.1.0"
