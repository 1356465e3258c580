"""The fault campaign's fuzzed-model path (scripts/fault_campaign.py): a short run through the node's logic executes
fuzzed programs, moves only within limits, and never fails inside the model stand-in (it takes what the node
passes a Commander)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "shadow_dog"))

import fault_campaign  # noqa: E402


def test_a_short_fuzzed_campaign_moves_within_limits_and_has_no_model_errors():
    summary = fault_campaign.fuzz_path(300, seed=7)
    assert summary["commands"] == 300
    assert summary["crashes"] == 0 and summary["logged_errors"] == 0
    assert summary["node_counts"]["model_errors"] == 0
    assert summary["node_counts"]["executed"] > 0 and summary["nonzero_twists"] > 0
    assert summary["twists_beyond_limits"] == 0 and summary["motions_not_from_accepted_programs"] == 0
