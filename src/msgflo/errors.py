"""One base for every error msgflo raises on purpose, so that a command catches ``MsgfloError``
and prints one line, while a bug (any other exception) still shows its traceback.

Each domain has one class here; modules subclass it where their callers need to tell their own
errors apart (``FbpSyntaxError`` is a ``GraphError``, ``TransportError`` a ``ConnectError``).
"""

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


class NetworkError(MsgfloError):
    """A running network that cannot do what was asked: a node, edge or packet the
    coordinator cannot add, wire or deliver as the participants stand."""


class ConfigError(MsgfloError):
    """A setting or file that configures msgflo (secrets, deployment, autoscaling) and cannot
    be used as given."""


class SpecError(MsgfloError):
    """A test suite that cannot be read, or a test case that cannot be judged."""
