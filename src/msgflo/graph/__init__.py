"""FBP graphs: the model a network is built from, the .fbp language and fbp-graph JSON."""

from msgflo.graph.check import KnownComponent, Problem, check, check_components
from msgflo.graph.dot import to_dot
from msgflo.graph.events import GraphEvent
from msgflo.graph.fbp import FbpSyntaxError, GraphValidationError, fbp_losses, parse_fbp, to_fbp
from msgflo.graph.files import JsonFileError, load_graph, save_graph
from msgflo.graph.model import Graph, GraphError
from msgflo.graph.parts import Edge, ExportedPort, Group, Initial, Location, Node, PortRef

__all__ = [
    "Edge",
    "ExportedPort",
    "FbpSyntaxError",
    "Graph",
    "GraphError",
    "GraphEvent",
    "GraphValidationError",
    "Group",
    "Initial",
    "JsonFileError",
    "KnownComponent",
    "Location",
    "Node",
    "PortRef",
    "Problem",
    "check",
    "check_components",
    "fbp_losses",
    "load_graph",
    "parse_fbp",
    "save_graph",
    "to_dot",
    "to_fbp",
]
