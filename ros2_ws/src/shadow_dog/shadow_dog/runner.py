"""Threads that drive `DogNodeLogic` in real time: a model worker and a control loop at a fixed period.

Transports without their own executor (the DDS transport, scripts, the simulation) use this; the rclpy adapter uses
it too, so both run the same loop. `stop()` -- and leaving the `with` block for any reason, an exception included --
calls `logic.shutdown()`, which publishes zero velocity.
"""

from __future__ import annotations

import logging
import threading
import time

from .logic import DogNodeLogic

log = logging.getLogger(__name__)


class NodeRunner:
    def __init__(self, logic: DogNodeLogic) -> None:
        self.logic = logic
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> NodeRunner:
        self._threads = [
            threading.Thread(target=self._worker, name="shadow_dog-model", daemon=True),
            threading.Thread(target=self._control, name="shadow_dog-control", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.logic.shutdown()
        for thread in self._threads:
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.warning("%s did not stop within 5 s", thread.name)

    def __enter__(self) -> NodeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _worker(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self.logic.process_next(timeout=0.1)
                except (
                    Exception
                ):  # process_next handles model failures; anything else is a bug: halt, keep serving
                    log.exception("the model worker failed: halting")
                    self.logic.stop("model worker failure")
        except BaseException as exc:  # the worker is killed (SystemExit, MemoryError...): no more decoding
            self.logic.worker_failed(f"model worker died ({type(exc).__name__})")
            raise

    def _control(self) -> None:
        period = self.logic.config.control_period_s
        deadline = time.monotonic()
        worker = self._threads[0]
        while not self._stopping.is_set():
            if not worker.is_alive() and not self._stopping.is_set():
                self.logic.worker_failed("model worker died")  # however it ended: halted, commands refused
            self.logic.tick()  # never raises
            deadline += period
            delay = deadline - time.monotonic()
            if (
                delay < -period
            ):  # overran by more than a period (a stall): re-anchor instead of bursting ticks
                log.warning("control loop overran by %.0f ms", -delay * 1000.0)
                deadline = time.monotonic()
                delay = 0.0
            self._stopping.wait(max(0.0, delay))
