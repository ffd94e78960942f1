"""The one exception type for mistakes a user can fix; command lines print its message, never a traceback."""


class UserError(Exception):
    """Something the user can fix: the message says what was wrong and what to do about it."""
