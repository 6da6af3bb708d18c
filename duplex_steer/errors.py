"""The toolkit's error base: every error meant for a user derives from it, so commands can print
its message instead of a traceback."""


class DuplexSteerError(Exception):
    """An error with a message written for the user: what was wrong and what to do."""
