"""Stopping a training run on request: SIGTERM (schedulers, spot instances) and SIGUSR1 (SLURM's
--signal) ask the loop to finish its step, write a checkpoint and stop (exit 143); Ctrl-C stops at
once (exit 130). Either way the sentence says what there is to resume."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import checkpoint as ckpt
from . import distributed as dist
from .errors import Interrupted, Stopped

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


class StopRequests:
    """The signal a run was sent, if any, agreed across ranks so that all stop after the same step."""

    def __init__(self, output_dir: Path, device: torch.device) -> None:
        self.output_dir, self.device = output_dir, device
        self.signal = 0

    @contextmanager
    def watching(self, step: callable) -> Iterator[None]:
        """Inside: the stop signals are noted (handlers live in the main thread only); a Ctrl-C becomes
        `Interrupted` naming the step (`step()`) and what there is to resume. Handlers restored after."""
        self.signal = 0
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                previous[number] = signal.signal(number, lambda received, frame: setattr(self, "signal", received))
        try:
            yield
        except KeyboardInterrupt:
            self.stop("Ctrl-C", step(), 130, Interrupted)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def agreed(self) -> bool:
        """Whether any rank was asked to stop; every rank then holds that signal (a collective)."""
        if dist.world_size() > 1:
            self.signal = int(dist.max_across_ranks(torch.tensor(self.signal, device=self.device)))
        return bool(self.signal)

    def stop_if_signalled(self, step: int) -> None:
        if self.signal:
            self.stop(signal.Signals(self.signal).name, step, 143)

    def stop(self, what: str, step: int, exit_code: int, kind: type[Stopped] = Stopped) -> None:
        # Rank 0 wrote the checkpoints; every rank says the same (a collective: all ranks come here).
        last = dist.gather_to_all(ckpt.list_checkpoints(self.output_dir) if dist.is_main() else [])[0]
        resume = (f"{last[-1]} holds step {last[-1].name.removeprefix(ckpt.PREFIX)}; resume with "
                  "`seqtune train ... --resume` (or train(resume_from_checkpoint=True))" if last
                  else "no checkpoint was written yet, so there is nothing to resume")
        raise kind(f"stopped by {what} at step {step}; {resume}", exit_code) from None
