"""The one exception type that reaches the user as a message instead of a traceback."""


class AocrError(Exception):
    """A problem the user can fix: the message names the file, flag or field and what to do."""
