"""One base for every error msgflo raises on purpose, so that a command catches ``MsgfloError``
and prints one line, while a bug (any other exception) still shows its traceback."""

from __future__ import annotations


class MsgfloError(Exception):
    """An error with a message meant for the user: one line, naming the file, field or URL."""


class GraphError(MsgfloError):
    """A graph that cannot be read, parsed or changed as asked."""


class LibraryError(MsgfloError):
    """A component library that cannot be read, or a component it does not have."""


class ConnectError(MsgfloError):
    """A broker or runtime that cannot be reached, or that refused what was asked."""


class ProtocolError(MsgfloError):
    """A message that does not follow the wire or FBP protocol."""
