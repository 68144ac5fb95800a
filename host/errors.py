"""The one error type that reaches the user as a one-line message (no traceback)."""


class UserError(Exception):
    """Bad input or an environment problem the user can fix; printed as one line, exit 2."""
