"""The one exception type users see.

Anything raised as :class:`UserError` is a problem with the user's input
(configuration, corpus, command line); ``asr-trainer`` prints its message and
exits with status 2 instead of showing a stack trace.
"""


class UserError(Exception):
    """A clear, actionable error about the user's input or environment."""


class Interrupted(UserError):
    """Training stopped on request (Ctrl-C, SIGTERM) after saving a checkpoint; ``asr-trainer`` exits with
    status 130."""
