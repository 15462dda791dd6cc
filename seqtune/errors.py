"""The exceptions users see: a clear sentence, no traceback from the command line."""


class SeqtuneError(ValueError):
    """Bad input or environment, described in one sentence (what, where, what to do)."""

    exit_code = 2


class Stopped(SeqtuneError):
    """Training stopped on request (SIGTERM, SIGUSR1, Ctrl-C); the sentence says what there is to resume."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(Stopped, KeyboardInterrupt):
    """Ctrl-C during training: still a KeyboardInterrupt to code that catches one."""
