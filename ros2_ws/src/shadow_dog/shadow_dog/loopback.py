"""A DDS environment confined to this machine, for tests, scripts and local tries of the node.

`loopback_env(domain)` returns the environment variables under which both DDS implementations the node meets stay
on loopback: Fast DDS (rclpy's rmw_fastrtps_cpp) through `config/fastdds_loopback.xml` -- set in BOTH
FASTDDS_DEFAULT_PROFILES_FILE (Fast DDS 3, Kilted) and FASTRTPS_DEFAULT_PROFILES_FILE (Fast DDS 2.14, Jazzy) --
with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and ROS_LOCALHOST_ONLY unset, and Cyclone DDS (the `--transport dds`
node, the simulated Go2) through `config/cyclonedds_loopback.xml` (bound to `lo`, multicast off, peer
127.0.0.1). Every DDS process a test or script starts gets this environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FASTDDS_PROFILE = "fastdds_loopback.xml"
CYCLONEDDS_CONFIG = "cyclonedds_loopback.xml"


def config_dir() -> Path:
    """The package's config/ folder: in the source tree, or `share/shadow_dog/config` of a colcon install."""
    source = Path(__file__).resolve().parents[1] / "config"
    if (source / FASTDDS_PROFILE).is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("shadow_dog")) / "config"
    except Exception as exc:  # not in a colcon install either
        raise FileNotFoundError(
            f"no {FASTDDS_PROFILE} next to {__file__} nor in a shadow_dog install"
        ) from exc


def loopback_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with every DDS setting pointed at loopback on `domain_id`."""
    if not 0 <= domain_id <= 232:
        raise ValueError(f"a DDS domain is in [0, 232], got {domain_id}")
    env = dict(os.environ if base is None else base)
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; with it set, Jazzy+ ignore the discovery range
    profile = str(config_dir() / FASTDDS_PROFILE)
    env.update(
        {
            "ROS_DOMAIN_ID": str(domain_id),
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "FASTDDS_DEFAULT_PROFILES_FILE": profile,
            "FASTRTPS_DEFAULT_PROFILES_FILE": profile,
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "CYCLONEDDS_URI": (config_dir() / CYCLONEDDS_CONFIG).as_uri(),
        }
    )
    return env


def apply_loopback_env(domain_id: int) -> dict[str, str | None]:
    """Put `loopback_env` into this process's environment (before it joins a domain); returns the old values so
    that a caller can restore them."""
    env = loopback_env(domain_id)
    keys = ("ROS_LOCALHOST_ONLY", *sorted(k for k in env if k not in os.environ or os.environ[k] != env[k]))
    old = {key: os.environ.get(key) for key in keys}
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.update({k: env[k] for k in keys if k in env})
    return old
