"""Where the bundled robot-dog adapter is, from a clone and from an installed wheel.

The repository keeps it in `adapters/robot-dog-shadow/` (retrained there, read there by the scripts). The
`shadow-edge` wheel carries no adapter and no training data; the separate `shadow-edge-models` distribution
(`shadow-edge-models/` in the repository, installed by scripts/install.sh) carries a copy for installed use.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_ADAPTER_NAME = "robot-dog-shadow"
# In a clone (or an editable install) this file is <repo>/export/bundled.py; installed, it lies in site-packages.
_CLONE_ADAPTERS = Path(__file__).resolve().parent.parent / "adapters"


def default_adapter_dir(name: str = DEFAULT_ADAPTER_NAME) -> Path:
    """The bundled adapter `name`: the clone's `adapters/<name>` when there is one, else the copy in the installed
    `shadow-edge-models` distribution. When neither is there, the clone's path, so that checking it names what
    is missing (`checkpoint.check_adapter`: "adapter directory not found")."""
    clone = _CLONE_ADAPTERS / name
    if (clone / "adapter_config.json").is_file():
        return clone
    try:
        from shadow_edge_models import adapter_dir
    except ImportError:
        return clone
    try:
        return adapter_dir(name)
    except FileNotFoundError:
        return clone
