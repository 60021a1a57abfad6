"""The FBP network protocol runtime: how Flowhub, fbp-spec and fbp-test see and edit a running
msgflo network (see docs/runtime.md)."""

from msgflo.runtime.access import Access, AccessError, Level
from msgflo.runtime.core import MAIN_GRAPH, Runtime, RuntimeOptions
from msgflo.runtime.server import Endpoint, live_url, make_app, serve

__all__ = [
    "MAIN_GRAPH",
    "Access",
    "AccessError",
    "Endpoint",
    "Level",
    "Runtime",
    "RuntimeOptions",
    "live_url",
    "make_app",
    "serve",
]
