"""Errors a command reports as one line, without a traceback."""


class UserError(Exception):
    """Something the user can fix: a bad argument, a missing server, an unknown name."""
