"""What the node-logic tests share: a fake clock, a node on it with a scripted Commander, and ways to drive and read it.

Everything runs on the fake clock: `tick()` is called by hand (`run_for`), so timings are exact and nothing sleeps.
"""

from __future__ import annotations

from scripted_commander import PERIOD, make_commander
from shadow_dog.config import NodeConfig
from shadow_dog.logic import DogNodeLogic
from shadow_dog.outputs import MemoryOutputs


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def make_node(commander="default", **config):
    clock = FakeClock()
    outputs = MemoryOutputs(clock)
    session = None
    if commander == "default":
        commander, session = make_commander()
    node = DogNodeLogic(outputs, commander, NodeConfig(**{"control_period_s": PERIOD, **config}), clock=clock)
    return node, outputs, clock, session


def command(node, text, **kwargs):
    node.submit_text(text, **kwargs)
    while node.process_next():
        pass


def run_for(node, clock, seconds):
    for _ in range(round(seconds / PERIOD)):
        clock.advance(PERIOD)
        node.tick()


def nonzero(twist) -> bool:
    return any(abs(v) > 0 for v in twist)


def records(outputs):
    return outputs.of("program")


def mark(out) -> int:
    return len(out.sent)


def moving_twists_after(out, index):
    """Non-zero velocities sent after message number `index` (see `mark`)."""
    return [s.value for s in out.sent[index:] if s.kind == "twist" and nonzero(s.value)]
