"""The fault campaign's kill test (`fault_campaign.py`): `shadow-dog --transport dds` next to the simulated Go2 on
loopback DDS, killed with SIGKILL once the dog walks; when, and how fast, the dog stops on its own command timeout."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shadow_dog.config import NodeConfig

ROOT = Path(__file__).resolve().parents[1]

MOVE_TEXTS = [
    "walk forward five metres",
    "go forward four metres",
    "walk forward three metres",
    "move forward 5 metres",
    "walk backwards three metres",
    "strafe left two metres",
    "turn around twice",
]


def pick_move(model_dir: Path) -> tuple[str, str] | None:
    """A command the model turns into an accepted move of at least 3 s (so that the kill lands mid-move)."""
    from shadow_edge.runtime.commander import Commander
    from shadow_edge.runtime.safety import MotionSegment

    commander = Commander(str(model_dir), providers="cpu")
    for text in MOVE_TEXTS:
        result = commander.run(text)
        if result.accepted and result.plan is not None:
            moving = sum(s.duration_s for s in result.plan.steps if isinstance(s, MotionSegment))
            if moving >= 3.0:
                return text, result.program
    return None


def scripted_export(program: str) -> Path:
    """A tiny ONNX export that answers `program` to every command (the tests' scripted decoder)."""
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from runtime_fakes import EOS_ID, SUFFIX, bigram_decoder, tiny_tokenizer, write_export_dir
    from shadow_edge.runtime.grammar import action_vocabulary

    tokenizer = tiny_tokenizer()
    ids = action_vocabulary(tokenizer, EOS_ID)
    script = [*tokenizer.encode(program, add_special_tokens=False).ids, EOS_ID]
    start = tokenizer.encode(SUFFIX, add_special_tokens=False).ids[-1]
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    directory = Path(tempfile.mkdtemp(prefix="fault-campaign-model-"))
    return write_export_dir(
        directory, tokenizer, ids, lambda p: bigram_decoder(p, vocab, ids, script, start_id=start)
    )


def kill_mid_move(model_dir: Path, domain: int, timeout_s: float = 120.0) -> dict[str, Any]:
    from shadow_dog.loopback import apply_loopback_env, loopback_env

    choice = pick_move(model_dir) if (model_dir / "manifest.json").is_file() else None
    used = str(model_dir)
    if choice is None:  # the model is being retrained: the kill test must not hang on what it answers
        model_dir, used = (
            scripted_export("move x=5"),
            "scripted tiny export answering 'move x=5' (tests/runtime_fakes)",
        )
        choice = ("walk forward five metres", "move x=5")
    text, program = choice
    apply_loopback_env(domain)  # this process's Cyclone participant (the simulated dog) stays on loopback
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic
    from shadow_dog.dds_transport import ros_default_qos
    from shadow_dog.dds_types import String_
    from shadow_edge.sim.sim_go2 import SimGo2
    from shadow_edge.sim.sim_go2_dds import SimGo2DdsBridge

    sim = SimGo2()
    bridge = SimGo2DdsBridge(sim, NodeConfig(), domain_id=domain).start()
    participant = DomainParticipant(domain)
    writer = DataWriter(
        participant, Topic(participant, "rt/shadow_dog/command_text", String_), ros_default_qos()
    )
    env = loopback_env(domain)
    argv = [sys.executable, "-m", "shadow_dog.main", "--transport", "dds", "--model-dir", str(model_dir)]
    node = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return {"model": used, **_kill_run(sim, bridge, writer, node, text, program, timeout_s)}
    finally:
        if node.poll() is None:
            node.kill()
        node.wait()
        bridge.stop()


def _wait(predicate: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _kill_run(
    sim: Any, bridge: Any, writer: Any, node: Any, text: str, program: str, timeout_s: float
) -> dict:
    from shadow_dog.dds_types import String_

    if not _wait(lambda: writer.get_publication_matched_status().current_count >= 1, timeout_s):
        return {
            "error": "the node never subscribed to its command topic",
            "node_stderr": node.stderr.read()[-2000:],
        }
    time.sleep(1.0)  # Cyclone's reliable reader is matched both ways
    writer.write(String_(text))
    if not _wait(lambda: any(abs(v) > 0 for v in sim.command), timeout_s):
        return {"error": "the dog never got a velocity", "text": text, "program": program}
    time.sleep(1.5)  # walking
    speed_at_kill = math.hypot(*sim.velocity()[:2])
    killed = time.monotonic()
    node.kill()  # SIGKILL: no shutdown code runs, no zero velocity is sent
    node.wait()
    zeroed = _wait(lambda: sim.command == (0.0, 0.0, 0.0), 5.0)
    command_zero_s = time.monotonic() - killed
    samples = []  # (seconds after the kill, x, y): instantaneous velocities of a gait sway, positions do not
    while time.monotonic() - killed < 3.0:
        pose = sim.pose()
        samples.append((round(time.monotonic() - killed, 3), round(pose.x, 4), round(pose.y, 4)))
        time.sleep(0.1)
    late = [s for s in samples if s[0] >= 2.0]
    drift = math.hypot(late[-1][1] - late[0][1], late[-1][2] - late[0][2]) if len(late) > 1 else math.nan
    travelled = math.hypot(samples[-1][1] - samples[0][1], samples[-1][2] - samples[0][2])
    limit = sim.command_timeout_s
    return {
        "text": text,
        "program": program,
        "signal": "SIGKILL",
        "dog_command_timeout_s": limit,
        "last_twist_before_kill_s": round(killed - bridge.last_twist_at, 3),
        "command_zeroed_after_kill_s": round(command_zero_s, 3) if zeroed else None,
        "stopped_within_command_timeout": zeroed and command_zero_s <= limit + 2 * sim.tick_s,
        "speed_at_kill_m_s": round(speed_at_kill, 3),
        "travelled_after_kill_m": round(travelled, 3),
        "mean_speed_2_to_3_s_after_kill_m_s": round(drift / (late[-1][0] - late[0][0]), 3)
        if len(late) > 1
        else None,
        "positions_after_kill": samples,
    }
