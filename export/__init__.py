"""The exporter: a ShadowPEFT model to a validated ONNX export directory for the runtime (`shadow-export`).

from shadow_edge.export import ExportOptions, export

result = export(ExportOptions(precision="int8", out_dir="build/robot-dog-int8"))
result.passed, result.modes["detached"].summary()
"""

from shadow_edge.export.options import ExportOptions
from shadow_edge.export.pipeline import ExportFailed, export
from shadow_edge.export.results import ExportResult, ModeReport

__all__ = ["ExportFailed", "ExportOptions", "ExportResult", "ModeReport", "export"]
