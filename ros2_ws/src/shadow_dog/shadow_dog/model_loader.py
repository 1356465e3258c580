"""The node's model: the `Commander` for `NodeConfig.model_dir` (with the cloud hook and the node's speeds), or why
the node runs without one."""

from __future__ import annotations

import logging
from typing import Any

from .config import NodeConfig

log = logging.getLogger(__name__)


def load_commander(config: NodeConfig) -> tuple[Any | None, str | None]:
    """The Commander for `config.model_dir`, or (None, why) -- the node then runs without a model."""
    if not config.model_dir:
        return None, "no model_dir configured"
    from shadow_edge.runtime.commander import Commander, ModelLoadError

    cloud = None
    if config.cloud_url:
        from .cloud import CloudError, http_cloud_hook, read_token

        try:
            token = read_token(config.cloud_token_file) if config.cloud_token_file else None
            cloud = http_cloud_hook(config.cloud_url, config.cloud_timeout_s, token)
        except CloudError as exc:  # the edge model still runs; remote-routed commands are refused
            log.error("running without the cloud: %s", exc)
    try:
        from shadow_edge.runtime.safety import SafetyConfig

        commander = Commander(
            config.model_dir,
            providers=config.provider,
            threads=config.threads or None,
            min_confidence=config.min_confidence,
            cloud=cloud,
            safety_config=SafetyConfig(
                config.cruise_vx, config.cruise_vy, config.cruise_vyaw, config.max_motion_s
            ),
        )
    except (ModelLoadError, ValueError) as exc:
        log.error("cannot load the model: %s", exc)
        return None, str(exc)
    return commander, None
