"""The one exception users see: a clear sentence, no traceback from the command line."""


class SeqtuneError(ValueError):
    """Bad input or environment, described in one sentence (what, where, what to do)."""
