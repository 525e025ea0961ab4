"""What the serving half raises for inputs it cannot take: predict reports them by row, serve answers 4xx."""


class InputError(ValueError):
    """Inputs the task cannot take: the message says which and why, in one line."""


class TooLarge(InputError):
    """An input over a size limit (HTTP 413)."""
