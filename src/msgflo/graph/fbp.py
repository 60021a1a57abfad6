"""Reading and writing the .fbp language, in agreement with the reference parser (npm `fbp` 1.8.0).

The reference is a PEG: it tries alternatives in order, never gives back what a repetition has
eaten, and lets one line hold several statements. `fbp.lark` frames statements and parses JSON
with an LALR parser; a connection chain comes out as a flat run of atoms (names, nodes, arrows,
IIPs) whose spacing is still visible, and `_ChainReader` interprets it with the reference's
choices, so that both parsers accept the same files and build the same graphs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from msgflo.graph.check import Problem, check
from msgflo.graph.model import Graph, GraphError
from msgflo.graph.parts import Edge, ExportedPort, Initial, JsonDict, Location, Node, PortRef

__all__ = ["FbpSyntaxError", "GraphValidationError", "fbp_losses", "parse_fbp", "to_fbp"]


class FbpSyntaxError(GraphError):
    """A .fbp file the reference parser would reject, located to the character."""

    def __init__(
        self, message: str, *, file: str | None, line: int, column: int, source_line: str
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.source_line = source_line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        pad = "".join(c if c == "\t" else " " for c in self.source_line[: self.column - 1])
        return (
            f"{self.file or '<string>'}:{self.line}:{self.column}: {self.message}\n"
            f"{self.source_line}\n{pad}^"
        )


class GraphValidationError(GraphError):
    """A syntactically fine graph that refers to nodes that do not exist or lack a component."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# -- values as JavaScript sees them ------------------------------------------------------------


def _js_number(text: str) -> int | float | None:
    """The number JavaScript's parseFloat makes of `text`, as JSON.stringify would print it."""
    value = float(text)
    if math.isinf(value):
        return None
    if value.is_integer() and abs(value) < 1e21:
        return int(Decimal(repr(value)))
    return value


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and len(key) < 10


def _js_ordered(obj: JsonDict) -> JsonDict:
    """Order keys as a JavaScript object does: integer-like keys first, ascending."""
    numeric = sorted((k for k in obj if _is_array_index(k)), key=int)
    if not numeric:
        return obj
    ordered = {k: obj[k] for k in numeric}
    ordered.update((k, v) for k, v in obj.items() if k not in ordered)
    return ordered


_PARSE_FLOAT = re.compile(r"Infinity|[0-9]+(?:[eE][0-9]+)?")


def _parse_float(text: str) -> int | float | None:
    match = _PARSE_FLOAT.match(text)
    if match is None or match[0] == "Infinity":
        return None  # NaN and Infinity both print as null
    return _js_number(match[0])


def _metadata(items: str) -> JsonDict:
    """`key=value,...` node metadata; a bare item is a route, x and y are numbers."""
    metadata: JsonDict = {}
    for item in items.split(","):
        parts = item.split("=")
        key, value = ("routes", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        metadata[key] = _parse_float(value) if key in ("x", "y") else value
    return _js_ordered(metadata)


# -- grammar -----------------------------------------------------------------------------------

_WS = " \t\r\n"


@dataclass(slots=True)
class _Atom:
    """One element of a connection chain, with the position needed to judge its spacing."""

    kind: str
    text: str
    start: int
    end: int
    line: int
    column: int
    value: Any = None


@dataclass(slots=True)
class _Located:
    value: Any
    token: Token


def _span(tok: Token) -> tuple[int, int, int, int]:
    """Start, end, line and column, which lark's lexer sets on every token it makes."""
    return (
        cast(int, tok.start_pos),
        cast(int, tok.end_pos),
        cast(int, tok.line),
        cast(int, tok.column),
    )


def _token_atom(tok: Token, value: Any = None) -> _Atom:
    """An atom starting after any JSON whitespace its token absorbed."""
    text = str(tok)
    lead = text[: len(text) - len(text.lstrip(_WS))]
    start, end, line, column = _span(tok)
    if "\n" in lead:
        line += lead.count("\n")
        column = len(lead) - lead.rfind("\n")
    else:
        column += len(lead)
    return _Atom(tok.type, text, start + len(lead), end, line, column, value)


def _plain(node: Any) -> Any:
    if isinstance(node, _Located):
        return node.value
    kind = node.type
    if kind == "STRING":
        return json.loads(str(node))
    if kind == "NUMBER":
        return _js_number(str(node))
    return {"true": True, "false": False, "null": None}[str(node).lstrip(_WS)]


class _Shape(Transformer[Token, Any]):
    """Runs inside the LALR parser (no tree is built): JSON becomes Python values, a chain a
    list of atoms, everything else stays a token."""

    def start(self, items: list[Any]) -> list[Any]:
        return items

    def chain(self, items: list[Any]) -> list[_Atom]:
        atoms: list[_Atom] = []
        for item in items:
            if isinstance(item, tuple):
                atoms.extend(item)
            elif item.type == "INDEX":
                text = str(item).rstrip(_WS)
                start, _, line, column = _span(item)
                atoms.append(_Atom("INDEX", text, start, start + len(text), line, column))
            elif item.type == "JSON_WORD":
                atoms.append(_token_atom(item, _plain(item)))
            else:
                atoms.append(_token_atom(item))
        return atoms

    def json_iip(self, items: list[Any]) -> tuple[_Atom, _Atom]:
        value, arrow = items
        first = value.token if isinstance(value, _Located) else value
        return _token_atom(first, _plain(value)), _Atom(
            "ARROW", "->", arrow.end_pos - 2, arrow.end_pos, arrow.end_line, arrow.end_column - 2
        )

    def object(self, items: list[Any]) -> _Located:
        return _Located(_js_ordered(dict(items[1:])), items[0])

    def pair(self, items: list[Any]) -> tuple[str, Any]:
        return json.loads(str(items[0])), _plain(items[1])

    def array(self, items: list[Any]) -> _Located:
        return _Located([_plain(v) for v in items[1:]], items[0])

    def export(self, items: list[Any]) -> tuple[str, Token, Token]:
        return "export", items[0], items[1]

    def default(self, items: list[Any]) -> tuple[str, Token, Token]:
        return "default", items[0], items[1]


@cache
def _parser() -> Lark:
    grammar = resources.files("msgflo.graph").joinpath("fbp.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_Shape())


# -- errors ------------------------------------------------------------------------------------

_WORDS = {
    "NAME": "a name",
    "NODE_DECL": "a node",
    "ANON_NODE": "a node",
    "INDEX": "a port index",
    "ARROW": "'->'",
    "JSON_ARROW": "'->'",
    "QUOTED": "an IIP",
    "STRING": "a JSON value",
    "NUMBER": "a JSON value",
    "LBRACE": "a JSON value",
    "LSQB": "a JSON value",
    "TRUE": "a JSON value",
    "FALSE": "a JSON value",
    "NULL": "a JSON value",
    "_RBRACE": "'}'",
    "_RSQB": "']'",
    "_COMMA": "','",
    "_COLON": "':'",
    "SEP": "','",
    "NL": "a line break",
    "COMMENT": "a comment",
    "ANNOTATION": "an annotation",
    "EXPORT_REF": "node.PORT:NAME",
    "INPORT_KW": "INPORT=",
    "OUTPORT_KW": "OUTPORT=",
    "DEFAULT_INPORT_KW": "DEFAULT_INPORT=",
    "DEFAULT_OUTPORT_KW": "DEFAULT_OUTPORT=",
    "$END": "the end of the file",
}


def _expected(names: set[str]) -> str:
    words = sorted({_WORDS.get(n, n) for n in names if n != "SPACES"})
    if len(words) > 4:
        return ""
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe(char: str) -> str:
    names = {"\t": "a tab", "\n": "a line break", "\r": "a line break", " ": "a space"}
    return names.get(char, f"'{char}'")


class _Source:
    def __init__(self, text: str, file: str | None) -> None:
        self.text = text
        self.file = file

    def position(self, offset: int) -> tuple[int, int]:
        line_start = self.text.rfind("\n", 0, offset) + 1
        return self.text.count("\n", 0, offset) + 1, offset - line_start + 1

    def error(self, offset: int, message: str) -> FbpSyntaxError:
        line, column = self.position(offset)
        return self.error_at(line, column, message)

    def error_at(self, line: int, column: int, message: str) -> FbpSyntaxError:
        source_line = self.text.split("\n")[line - 1].rstrip("\r") if self.text else ""
        return FbpSyntaxError(
            message, file=self.file, line=line, column=column, source_line=source_line
        )

    def location(self, line: int, column: int) -> Location:
        return Location(self.file, line, column)

    def lark_error(self, exc: UnexpectedInput) -> FbpSyntaxError:
        if isinstance(exc, UnexpectedCharacters):
            char = self.text[cast(int, exc.pos_in_stream)]
            if char == "\t":
                return self.error_at(exc.line, exc.column, "tabs are not allowed here")
            if char == "(":
                offset = cast(int, exc.pos_in_stream)
                good = _DECL_PREFIX.match(self.text, offset)
                end = good.end() if good else offset
                bad = _describe(self.text[end]) if end < len(self.text) else "end of file"
                return self.error(end, f"unexpected {bad} in a node declaration (Component:meta)")
            expected = _expected(set(exc.allowed or ()))
            tail = f", expected {expected}" if expected else ""
            return self.error_at(exc.line, exc.column, f"unexpected {_describe(char)}{tail}")
        assert isinstance(exc, UnexpectedToken)
        tok = exc.token
        if tok.type == "$END":
            line, column = self.position(len(self.text))
            what = "end of file"
        else:
            line, column = tok.line, tok.column
            what = _WORDS.get(tok.type, repr(str(tok)))
        expected = _expected(set(exc.expected))
        tail = f", expected {expected}" if expected else ""
        return self.error_at(line, column, f"unexpected {what}{tail}")


# -- interpretation ----------------------------------------------------------------------------

_DECL_PREFIX = re.compile(r"\([a-zA-Z0-9_/-]*(?::[a-zA-Z0-9_/=,]*)?")
_DECL = re.compile(r"([^(]*)\(([^:)]*)(?::([^)]*))?\)")
_EXPORT = re.compile(r"([^.]*)\.([^:]*):(.*)")
_ANNOTATION = re.compile(r"#[ ]+@(\S+)[ ]+(.*)")

_LINE_BREAKS = re.compile(r"^(?: *[\r\n])+")
_JSON_INT = re.compile(r"0|[1-9][0-9]*")

_IIP_KINDS = frozenset({"QUOTED", "STRING", "NUMBER", "LBRACE", "LSQB", "JSON_WORD"})

GARBAGE = -1  # a position inside a name that the reference parser stopped short of

# What a chain statement produces before its ends are paired: ("tgt"|"src", PortRef, Location)
# or ("data", value, Location).
_Element = tuple[str, Any, Location]


class _Reader:
    """Turns the framed statements into a graph, in file order, like the reference's actions."""

    def __init__(self, source: _Source, case_sensitive: bool) -> None:
        self.source = source
        self.case_sensitive = case_sensitive
        self.default_in = "IN"
        self.default_out = "OUT"
        self.nodes: dict[str, Node] = {}
        self.connections: list[Edge | Initial] = []
        self.inports: dict[str, ExportedPort] = {}
        self.outports: dict[str, ExportedPort] = {}
        self.properties: JsonDict = {}
        self.anonymous: dict[int, str] = {}
        self.anonymous_counts: dict[str, int] = {}

    def case(self, name: str) -> str:
        return name if self.case_sensitive else name.lower()

    def declare(self, name: str, component: str, meta: str | None, where: Location) -> None:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = Node(name, location=where)
        if component:
            node.component = component
        if meta is not None:
            node.metadata = _metadata(meta)

    def declare_anonymous(self, offset: int, component: str, meta: str | None, at: Location) -> str:
        name = self.anonymous.get(offset)
        if name is None:
            base = re.sub(r"[^a-zA-Z0-9]+", "_", component, count=1)
            count = self.anonymous_counts[base] = self.anonymous_counts.get(base, 0) + 1
            name = self.anonymous[offset] = f"_{base}_{count}"
            self.declare(name, component, meta, at)
        return name

    def read(self, items: list[Any]) -> Graph:
        after_statement = False
        for item in items:
            if isinstance(item, list):
                _ChainReader(self, item).read()
            elif isinstance(item, tuple):
                self.statement(*item)
            elif item.type == "SEP" and not after_statement:
                raise self.source.error_at(item.line, item.column, "unexpected ','")
            elif item.type == "ANNOTATION":
                self.annotate(str(item))
            after_statement = isinstance(item, list | tuple)
        text = self.source.text
        ends_in_comment = (
            bool(items) and isinstance(items[-1], Token) and items[-1].type == "COMMENT"
        )
        if text.endswith(" ") and not after_statement and not ends_in_comment:
            # the reference only takes trailing spaces as the end of a statement
            raise self.source.error(
                len(text.rstrip(" ")), "unexpected spaces at the end of the file"
            )
        return Graph(
            nodes=self.nodes,
            connections=self.connections,
            inports=self.inports,
            outports=self.outports,
            properties=_js_ordered(self.properties),
            case_sensitive=self.case_sensitive,
            file=self.source.file,
        )

    def annotate(self, text: str) -> None:
        match = _ANNOTATION.fullmatch(text)
        assert match is not None
        key, value = match.groups()
        if key == "runtime":
            self.properties["environment"] = {"type": value}
        else:
            self.properties[key] = value

    def statement(self, kind: str, keyword: Token, body: Token) -> None:
        keyword_end = _span(keyword)[1]
        start, _, line, column = _span(body)
        if keyword_end != start:
            raise self.source.error(keyword_end, f"no space is allowed after {keyword}")
        where = self.source.location(line, column)
        if kind == "default":
            dash = body.find("-")
            if dash >= 0:
                raise self.source.error(start + dash, "'-' is not allowed in a port name")
            if keyword.type == "DEFAULT_INPORT_KW":
                self.default_in = str(body)
            else:
                self.default_out = str(body)
            return
        match = _EXPORT.fullmatch(str(body))
        assert match is not None
        node_text, port, public = match.groups()
        node = self.node_of(node_text, start, where)
        ports = self.inports if keyword.type == "INPORT_KW" else self.outports
        public = self.case(public)
        ports[public] = ExportedPort(public, node, self.case(port), location=where)

    def node_of(self, text: str, offset: int, where: Location) -> str:
        """The name of a node written as `name`, `name(Comp:meta)` or `(Comp:meta)`."""
        decl = _DECL.fullmatch(text)
        if decl is None:
            return text
        name, component, meta = decl.groups()
        if name:
            self.declare(name, component, meta, where)
            return name
        return self.declare_anonymous(offset, component, meta, where)

    def port(self, node: str, port: tuple[str, int | None] | None, default: str) -> PortRef:
        if port is None:
            return PortRef(node, self.case(default))
        return PortRef(node, port[0], port[1])

    def connect(self, elements: list[_Element]) -> None:
        """Pair each source end with the target end that follows it, as the reference does;
        ends without a partner (a leading inport, a trailing outport) are dropped."""
        i = 1
        while i < len(elements):
            (kind, value, where), (next_kind, tgt, _) = elements[i - 1], elements[i]
            if kind != "tgt" and next_kind == "tgt":
                conn: Edge | Initial = (
                    Edge(value, tgt, location=where)
                    if kind == "src"
                    else Initial(value, tgt, location=where)
                )
                self.connections.append(conn)
                i += 1
            i += 1


_PortSpec = tuple[str, int | None]


class _ChainReader:
    """The reference's connection rules, applied to one run of atoms:

    connection  = source '->' connection / destination
    source      = bridge / outport / iip          destination = inport / bridge
    bridge      = port' ' node ' 'port / [port' '] nodeWithComponent [' 'port]
    outport     = node [' 'port]                  inport      = [port' '] node

    Ordered choice commits to the first alternative that matches, and a run may hold several
    statements. A result position of GARBAGE means the reference would have stopped inside a
    name, where nothing can follow.
    """

    def __init__(self, reader: _Reader, atoms: list[_Atom]) -> None:
        self.r = reader
        self.atoms = atoms
        self.n = len(atoms)
        self.text = reader.source.text
        self.furthest = -1
        self.problem = ""

    def fail(self, offset: int, message: str) -> None:
        if offset > self.furthest:
            self.furthest, self.problem = offset, message

    def offset(self, pos: int) -> int:
        if pos < self.n:
            return self.atoms[pos].start
        end = self.atoms[-1].end
        while end < len(self.text) and self.text[end] == " ":
            end += 1
        return end

    def error(self, pos: int, after_arrow: bool) -> FbpSyntaxError:
        offset = max(self.furthest, self.offset(pos))
        message = self.problem
        if offset == self.offset(pos):
            message = "expected a node, a port or an IIP" + (" after '->'" if after_arrow else "")
        return self.r.source.error(offset, message)

    def where(self, atom: _Atom) -> Location:
        return self.r.source.location(atom.line, atom.column)

    def read(self) -> None:
        pos = 0
        while pos < self.n:
            pos = self.statement(pos)

    def statement(self, start: int) -> int:
        first = self.atoms[start]
        if first.kind == "JSON_WORD" and "\t" not in _LINE_BREAKS.sub("", first.text):
            # at the start of a statement, line breaks end the previous line and spaces are
            # skipped; unless a tab remains, the word is a node name
            word = first.text.lstrip(_WS)
            self.atoms[start] = _Atom(
                "NAME", word, first.start, first.end, first.line, first.column
            )
        elements: list[_Element] = []
        pos = start
        while True:
            source = self.source(pos)
            if source is not None and source[1] != GARBAGE:
                if self.arrow_follows(source[0], source[1]):
                    elements.extend(source[0])
                    pos = source[1] + 1
                    continue
                self.fail(self.offset(source[1]), "expected '->'")
            destination = self.destination(pos)
            if destination is None or destination[1] == GARBAGE:
                raise self.error(pos, after_arrow=bool(elements))
            if elements:
                self.r.connect([*elements, *destination[0]])
            return destination[1]

    def arrow_follows(self, elements: list[_Element], pos: int) -> bool:
        """Whether '->' comes next; only spaces may precede it, or JSON whitespace after JSON."""
        if pos >= self.n or self.atoms[pos].kind != "ARROW":
            return False
        after_json = elements[0][0] == "data" and self.atoms[pos - 1].kind != "QUOTED"
        gap = self.text[self.atoms[pos - 1].end : self.atoms[pos].start]
        return after_json or not gap.strip(" ")

    # -- terminals -----------------------------------------------------------------------------

    def spaced(self, pos: int) -> bool:
        """Whether spaces follow the atom before `pos` (the reference's mandatory `__`)."""
        end = self.atoms[pos - 1].end
        return end < len(self.text) and self.text[end] == " "

    def port(self, pos: int) -> tuple[_PortSpec, int] | None:
        if pos == GARBAGE:
            return None
        if pos >= self.n or self.atoms[pos].kind != "NAME":
            self.fail(self.offset(pos), "expected a port name")
            return None
        atom = self.atoms[pos]
        dash = atom.text.find("-")
        if dash >= 0:
            self.fail(atom.start + dash, "'-' is not allowed in a port name")
            return (self.r.case(atom.text[:dash]), None), GARBAGE
        if pos + 1 < self.n and self.atoms[pos + 1].kind == "INDEX":
            index = _js_number(self.atoms[pos + 1].text[1:-1])
            return (self.r.case(atom.text), index if isinstance(index, int) else None), pos + 2
        return (self.r.case(atom.text), None), pos + 1

    def port_then_space(self, pos: int) -> tuple[_PortSpec, int] | None:
        found = self.port(pos)
        if found is None or found[1] == GARBAGE:
            return None
        if not self.spaced(found[1]):
            self.fail(self.atoms[found[1] - 1].end, "expected a space and a node after the port")
            return None
        return found

    def space_then_port(self, pos: int) -> tuple[_PortSpec, int] | None:
        if pos == GARBAGE or not self.spaced(pos):
            return None
        return self.port(pos)

    def node(self, pos: int, component_required: bool = False) -> tuple[str, int] | None:
        if pos == GARBAGE:
            return None
        atom = self.atoms[pos] if pos < self.n else None
        if atom is not None and atom.kind in ("NODE_DECL", "ANON_NODE"):
            return self.r.node_of(atom.text, atom.start, self.where(atom)), pos + 1
        if atom is None or atom.kind != "NAME" or component_required:
            what = "a node with its component" if component_required else "a node"
            self.fail(self.offset(pos), f"expected {what}")
            return None
        dot = atom.text.find(".")
        if dot >= 0:
            self.fail(atom.start + dot, "'.' is not allowed in a node name")
            return atom.text[:dot], GARBAGE
        following = self.atoms[pos + 1] if pos + 1 < self.n else None
        if following is not None and following.kind == "ARROW" and following.start == atom.end:
            self.fail(atom.end, "a node name needs a space before '->'")
            return atom.text, GARBAGE
        return atom.text, pos + 1

    # -- rules ---------------------------------------------------------------------------------

    def bridge(self, pos: int) -> tuple[list[_Element], int] | None:
        inport = self.port_then_space(pos)
        if inport is not None:
            node = self.node(inport[1])
            if node is not None:
                outport = self.space_then_port(node[1])
                if outport is not None:
                    return self.ends(pos, node[0], inport[0], outport[0]), outport[1]
        inport = self.port_then_space(pos)
        node = self.node(inport[1] if inport else pos, component_required=True)
        if node is None:
            return None
        outport = self.space_then_port(node[1])
        return (
            self.ends(pos, node[0], inport[0] if inport else None, outport[0] if outport else None),
            outport[1] if outport else node[1],
        )

    def ends(
        self, pos: int, node: str, inport: _PortSpec | None, outport: _PortSpec | None
    ) -> list[_Element]:
        where = self.where(self.atoms[pos])
        return [
            ("tgt", self.r.port(node, inport, self.r.default_in), where),
            ("src", self.r.port(node, outport, self.r.default_out), where),
        ]

    def outport(self, pos: int) -> tuple[list[_Element], int] | None:
        node = self.node(pos)
        if node is None:
            return None
        port = self.space_then_port(node[1])
        ref = self.r.port(node[0], port[0] if port else None, self.r.default_out)
        return [("src", ref, self.where(self.atoms[pos]))], port[1] if port else node[1]

    def inport(self, pos: int) -> tuple[list[_Element], int] | None:
        port = self.port_then_space(pos)
        node = self.node(port[1] if port else pos)
        if node is None:
            return None
        ref = self.r.port(node[0], port[0] if port else None, self.r.default_in)
        return [("tgt", ref, self.where(self.atoms[pos]))], node[1]

    def iip(self, pos: int) -> tuple[list[_Element], int] | None:
        atom = self.atoms[pos] if pos < self.n else None
        if atom is not None and atom.kind == "INDEX" and _JSON_INT.fullmatch(atom.text[1:-1]):
            # a port index glued to a node name starts a new statement as a JSON array
            return [("data", [int(atom.text[1:-1])], self.where(atom))], pos + 1
        if atom is None or atom.kind not in _IIP_KINDS:
            self.fail(self.offset(pos), "expected a node, a port or an IIP")
            return None
        if atom.kind == "QUOTED":
            data: Any = atom.text[1:-1].replace("\\'", "'")
        else:
            data = atom.value
        return [("data", data, self.where(atom))], pos + 1

    def source(self, pos: int) -> tuple[list[_Element], int] | None:
        return self.bridge(pos) or self.outport(pos) or self.iip(pos)

    def destination(self, pos: int) -> tuple[list[_Element], int] | None:
        return self.inport(pos) or self.bridge(pos)


# -- public API --------------------------------------------------------------------------------


def parse_fbp(
    text: str, *, file: str | None = None, case_sensitive: bool = False, validate: bool = True
) -> Graph:
    """Parse .fbp source. Port names are lower-cased unless `case_sensitive`; with `validate`,
    a graph that refers to undeclared nodes is rejected as the reference rejects it."""
    source = _Source(text, file)
    try:
        items = cast(list[Any], _parser().parse(text))
    except UnexpectedInput as exc:
        raise source.lark_error(exc) from exc
    graph = _Reader(source, case_sensitive).read(items)
    if validate:
        errors = [p for p in check(graph) if p.severity == "error"]
        if errors:
            raise GraphValidationError(errors)
    return graph


# -- writing -----------------------------------------------------------------------------------

_NODE_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
_PORT_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.]*")
_COMPONENT = re.compile(r"[a-zA-Z0-9_/-]*")
_META_WORD = re.compile(r"[a-zA-Z0-9_/]*")
_ANNOTATION_KEY = re.compile(r"[a-zA-Z0-9_-]+")
_ANNOTATION_VALUE = re.compile(r"[a-zA-Z0-9_.-][a-zA-Z0-9_ .-]*")


def _json_safe(value: Any) -> bool:
    """Whether JSON written for `value` reads back equal through JavaScript's number type."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return _js_number(str(value)) == value
    if isinstance(value, float):
        return math.isfinite(value) and _js_number(repr(value)) == value
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def _metadata_text(metadata: JsonDict) -> str | None:
    items = []
    for key, value in metadata.items():
        if not _META_WORD.fullmatch(key):
            return None
        if key in ("x", "y"):
            if value is None:
                value = ""
            elif (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < 0
                or _js_number(str(value)) != value
            ):
                return None
            value = str(value)
        elif not isinstance(value, str) or not _META_WORD.fullmatch(value):
            return None
        items.append(f"{key}={value}")
    return ",".join(items)


def _annotation(key: str, value: Any) -> str | None:
    if key == "environment" and isinstance(value, dict) and list(value) == ["type"]:
        key, value = "runtime", value["type"]
    elif key == "runtime":
        return None
    if (
        not _ANNOTATION_KEY.fullmatch(key)
        or not isinstance(value, str)
        or not _ANNOTATION_VALUE.fullmatch(value)
    ):
        return None
    return f"# @{key} {value}"


class _Writer:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.fatal: list[str] = []
        self.dropped: list[str] = []

    def node_name(self, name: str) -> str:
        if not _NODE_NAME.fullmatch(name):
            self.fatal.append(f"node name '{name}' cannot be written in .fbp")
        return name

    def port_name(self, name: str, what: str) -> str:
        """Port names in capitals, the convention, unless capitals would change the graph."""
        if not _PORT_NAME.fullmatch(name):
            self.fatal.append(f"{what} '{name}' cannot be written in .fbp")
        elif not self.graph.case_sensitive:
            if name != name.lower():
                self.fatal.append(
                    f"{what} '{name}' has capitals but the graph is not case-sensitive"
                )
            return name.upper()
        return name

    def ref(self, ref: PortRef) -> str:
        port = self.port_name(ref.port, "port name")
        return port if ref.index is None else f"{port}[{ref.index}]"

    def data(self, data: Any) -> str:
        if isinstance(data, str) and data.isprintable() and not data.endswith("\\"):
            return "'" + data.replace("'", "\\'") + "'"
        if not _json_safe(data):
            self.fatal.append(f"IIP data {data!r} cannot be written in .fbp")
        if data is None or isinstance(data, bool):
            return "\t" + json.dumps(data)  # after a tab these are JSON, not node names
        return json.dumps(data)

    def lines(self) -> list[str]:
        graph = self.graph
        out: list[str] = []
        for key, value in graph.properties.items():
            line = _annotation(key, value)
            if line is None:
                self.dropped.append(f"graph property '{key}'")
            else:
                out.append(line)
        for keyword, ports in (("INPORT", graph.inports), ("OUTPORT", graph.outports)):
            for exported in ports.values():
                if exported.metadata:
                    self.dropped.append(f"metadata of exported port '{exported.public}'")
                name = self.node_name(exported.node)
                port = self.port_name(exported.port, "port name")
                public = self.port_name(exported.public, "exported port name")
                out.append(f"{keyword}={name}.{port}:{public}")
        for node in graph.nodes.values():
            component = node.component or ""
            if node.component == "" or not _COMPONENT.fullmatch(component):
                self.fatal.append(f"component '{component}' cannot be written in .fbp")
            meta = _metadata_text(node.metadata) if node.metadata else ""
            if meta is None:
                self.dropped.append(f"metadata of node '{node.name}'")
            out.append(f"{self.node_name(node.name)}({component}{':' + meta if meta else ''})")
        for conn in graph.connections:
            if conn.metadata:
                self.dropped.append(f"metadata of the connection to {conn.tgt.node}")
            target = f"{self.ref(conn.tgt)} {self.node_name(conn.tgt.node)}"
            if isinstance(conn, Edge):
                source = f"{self.node_name(conn.src.node)} {self.ref(conn.src)}"
            else:
                source = self.data(conn.data)
            out.append(f"{source} -> {target}")
        self.dropped.extend(f"group '{group.name}'" for group in graph.groups)
        return out


def fbp_losses(graph: Graph) -> list[str]:
    """What a .fbp file cannot hold of `graph` (metadata of edges and ports, groups, some
    properties); to_fbp(graph, drop_unsupported=True) leaves these out."""
    writer = _Writer(graph)
    writer.lines()
    return writer.dropped


def to_fbp(graph: Graph, *, drop_unsupported: bool = False) -> str:
    """Write `graph` as .fbp that parses back (with the graph's case sensitivity) to an equal
    graph. Names and IIPs the language cannot spell are always an error; information the
    language has no place for is an error unless `drop_unsupported`."""
    writer = _Writer(graph)
    lines = writer.lines()
    if writer.fatal:
        raise GraphError("cannot write as .fbp: " + "; ".join(writer.fatal))
    if writer.dropped and not drop_unsupported:
        raise GraphError("cannot write as .fbp without losing " + ", ".join(writer.dropped))
    return "".join(line + "\n" for line in lines)
