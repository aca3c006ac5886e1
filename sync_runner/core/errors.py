"""Errors a user can act on.

Anything raised as a `UserError` is printed by the CLI as one line, without a traceback, and exits 2:
the message must name the file, model or key at fault and say what to do.
"""


class UserError(Exception):
    """A mistake in the user's project, config or command line — never a bug of ours."""

    exit_code = 2


class DbtFailed(UserError):
    """A dbt command the runner invoked did not succeed (its own output already said why)."""

    exit_code = 1


class Unsendable(ValueError):
    """An HTTP request that cannot be made at all (a URL without an http(s) scheme or a host, a header with a line
    break): the sync or alert it was for fails with this one-line reason."""
