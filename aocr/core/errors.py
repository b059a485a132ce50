"""The one exception type that reaches the user as a message instead of a traceback."""


class AocrError(Exception):
    """A problem the user can fix: the message names the file, flag or field and what to do."""


def first_line_of(message: str | None, fallback: str = "no details") -> str:
    """The first non-blank line of an error message (TensorFlow's can run for pages), or `fallback`."""
    return next((line.strip() for line in (message or "").splitlines() if line.strip()), fallback)
