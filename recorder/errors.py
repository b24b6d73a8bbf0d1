"""The one exception type for errors a user can cause (bad config, missing file, ...)."""


class RecorderError(Exception):
    """A problem with the user's input or environment; the CLI prints it on one line, exit 2."""
