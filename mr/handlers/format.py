"""The handler file formats. ``python`` (JobX's): a file is the *body* of a function.

The first statement is a docstring: free-text description lines, a line starting with ``**``
(``**`` or ``**yaml``: YAML follows; ``**json``: JSON follows), then the metadata, holding exactly
``argument_spec``, ``handler_type`` and ``required_capability``. The body is compiled as the body of
``def <name>(arguments)`` (mappers) or ``def <name>(results)`` (combiners, reducers).

Unlike JobX, the body is wrapped at the syntax-tree level instead of being re-indented as text,
so every line number (syntax errors, tracebacks) is the line in the user's file and string
literals keep their exact content.

``exec``: any executable file, started by its ``#!`` line. The same header follows that line as
comment lines (``#``, ``//``, ``--``, ``;`` or ``%``, the second line's marker throughout).
"""
from __future__ import annotations

import ast
import builtins
import dataclasses
import itertools
import json
import linecache
import re
import textwrap
from typing import Any, Callable

import yaml

from mr.models.handler import ARGUMENT_NAMES, HANDLER_TYPES, SOURCE_TYPES
from mr.models.names import InvalidNameError, normalize_capability

METADATA_KEYS = ("argument_spec", "handler_type", "required_capability")
#: The line-comment markers an exec handler's header may use (longest first where they overlap).
EXEC_COMMENT_MARKERS = ("//", "--", "#", ";", "%")
_MARKER_RE = re.compile(r"\s*\*\*(.*)$")
_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class HandlerFormatError(ValueError):
    """A handler file that cannot be used; ``str()`` is ``file:line: reason``."""

    def __init__(self, filename: str, line: int, reason: str):
        super().__init__(f"{filename}:{line}: {reason}")
        self.filename = filename
        self.line = line
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class HandlerSource:
    """What a handler file declares, checked; ``source_code`` is the whole file, unchanged."""
    description: str
    argument_spec: list[list[str | None]]
    handler_type: str
    required_capability: str
    source_code: str
    source_type: str = "python"


def source_type_of(filename: str, text: str) -> str | None:
    """The source type of a handler file: ``python`` for ``.py`` files, ``exec`` for other files
    starting with ``#!``; None for a file that is not a handler."""
    if filename.endswith(".py"):
        return "python"
    return "exec" if text.startswith("#!") else None


def parse_handler_source(text: str, filename: str = "<handler>",
                         source_type: str = "python") -> HandlerSource:
    """Parse and check a handler file (its metadata, and a Python file's syntax) without running
    any of it."""
    if source_type == "python":
        module = _parse(text, filename)
        header = _Header.from_module(module, filename)
    elif source_type == "exec":
        header = _Header.from_exec_file(text, filename)
    else:
        raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}, "
                         f"got {source_type!r}")
    handler_type = header.handler_type()
    source = HandlerSource(description=header.description,
                           argument_spec=header.argument_spec(handler_type),
                           handler_type=handler_type,
                           required_capability=header.required_capability(),
                           source_code=text, source_type=source_type)
    if source_type == "python":
        _compile_body(module, handler_type, "handler", filename)
    return source


def compile_handler(source_code: str, handler_type: str, name: str,
                    scope: dict[str, Any] | None = None) -> Callable:
    """The handler as a function whose globals are ``scope`` (plus builtins and ``__name__``).

    Only the ``def`` is executed; nothing of the handler runs until the function is called.
    """
    filename = show_in_tracebacks(name, source_code)
    function_name = "handler_" + re.sub(r"\W", "_", name, flags=re.ASCII)
    code = _compile_body(_parse(source_code, filename), handler_type, function_name, filename)
    namespace = {"__builtins__": builtins, "__name__": f"handler({name})", **(scope or {})}
    exec(code, namespace)
    return namespace[function_name]


def show_in_tracebacks(name: str, source_code: str) -> str:
    """Let tracebacks through handler ``name`` quote ``source_code``; returns its file name.

    Call again before running another version of the same handler: the name is shared."""
    filename = f"handler:{name}"
    linecache.cache[filename] = (len(source_code), None, source_code.splitlines(True), filename)
    return filename


def _parse(text: str, filename: str) -> ast.Module:
    # The parser accepts top-level ``yield`` and ``return``; the compiler checks them in the def.
    try:
        return ast.parse(text, filename)
    except SyntaxError as error:
        raise HandlerFormatError(filename, error.lineno or 1, error.msg) from None


def _compile_body(module: ast.Module, handler_type: str, function_name: str, filename: str):
    """Compile ``module``'s statements as the body of a function; the module's code object."""
    if handler_type not in ARGUMENT_NAMES:
        raise ValueError(f"handler_type must be one of {', '.join(HANDLER_TYPES)}, "
                         f"got {handler_type!r}")
    if not module.body:
        raise HandlerFormatError(filename, 1, "the handler has no code")
    _check_generator_rules(module.body, handler_type, filename)
    wrapper = ast.parse(f"def {function_name}({ARGUMENT_NAMES[handler_type][0]}):\n    pass\n")
    function = wrapper.body[0]
    function.body = module.body
    function.end_lineno = module.body[-1].end_lineno
    function.end_col_offset = module.body[-1].end_col_offset
    try:
        return compile(wrapper, filename, "exec")
    except SyntaxError as error:
        raise HandlerFormatError(filename, error.lineno or 1, error.msg) from None


def _check_generator_rules(body: list[ast.stmt], handler_type: str, filename: str) -> None:
    """A mapper yields; a handler that yields may not ``return`` a value too (it would be lost)."""
    own_nodes = list(_own_scope(body))
    yields = [node.lineno for node in own_nodes if isinstance(node, (ast.Yield, ast.YieldFrom))]
    if yields and handler_type == "partitioner":
        raise HandlerFormatError(filename, min(yields), "a partitioner returns the partition "
                                 "number of its key (an int); it does not yield")
    if not yields:
        if handler_type == "mapper":
            raise HandlerFormatError(filename, 1, "a mapper must be a generator: it yields "
                                     "MrConfigureToMap(step) or MrConfigureToReturn() first, "
                                     "then (key, value) pairs")
        return
    returns = [node.lineno for node in own_nodes
               if isinstance(node, ast.Return) and node.value is not None]
    if returns:
        raise HandlerFormatError(filename, min(returns), "'return <value>' in a handler that "
                                 "yields: the value would be lost; either yield the pairs or "
                                 "return an iterable of them")


def _own_scope(nodes: list[ast.AST]):
    """Every node of the handler's own function scope (not of functions or classes it defines)."""
    stack = [node for node in nodes if not isinstance(node, _NESTED_SCOPES)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node)
                     if not isinstance(child, _NESTED_SCOPES))


class _Header:
    """The description and metadata of a docstring or of an exec handler's header comment, with
    the file line of each metadata line."""

    def __init__(self, filename: str, description: str, metadata: dict,
                 marker_line: int, metadata_lines: list[str]):
        self.filename = filename
        self.description = description
        self.metadata = metadata
        self.marker_line = marker_line
        self.metadata_lines = metadata_lines

    @classmethod
    def from_module(cls, module: ast.Module, filename: str) -> "_Header":
        first = module.body[0] if module.body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            raise HandlerFormatError(filename, first.lineno if first else 1,
                                     "the handler must start with a docstring holding its "
                                     "description and metadata")
        return cls.from_lines(first.value.value.split("\n"), first.lineno, filename,
                              "the docstring")

    @classmethod
    def from_exec_file(cls, text: str, filename: str) -> "_Header":
        """The header of an exec handler: the comment lines right after its ``#!`` line."""
        lines = text.split("\n")
        if not lines[0].startswith("#!"):
            raise HandlerFormatError(filename, 1, "an exec handler must start with a '#!' line "
                                     "naming the program that runs it")
        second = lines[1] if len(lines) > 1 else ""
        marker = next((marker for marker in EXEC_COMMENT_MARKERS if second.startswith(marker)),
                      None)
        if marker is None:
            raise HandlerFormatError(filename, 2, f"an exec handler's header (description and "
                                     f"metadata) must follow its '#!' line, as comment lines "
                                     f"starting with one of {' '.join(EXEC_COMMENT_MARKERS)}")
        comments = itertools.takewhile(lambda line: line.startswith(marker), lines[1:])
        return cls.from_lines([line[len(marker):] for line in comments], 2, filename,
                              "the header comment")

    @classmethod
    def from_lines(cls, lines: list[str], first_line: int, filename: str,
                   where: str) -> "_Header":
        """Parse header ``lines``, the first being file line ``first_line``."""
        marker_index = next((index for index, line in enumerate(lines)
                             if _MARKER_RE.match(line)), None)
        if marker_index is None:
            raise HandlerFormatError(filename, first_line, f"{where} has no '**' line "
                                     f"separating the description from the metadata")
        marker_line = first_line + marker_index
        metadata_lines = textwrap.dedent("\n".join(lines[marker_index + 1:])).split("\n")
        description = textwrap.dedent("\n".join(lines[:marker_index])).strip()
        metadata = _load_metadata(_MARKER_RE.match(lines[marker_index]).group(1).strip(),
                                  "\n".join(metadata_lines), filename, marker_line)
        header = cls(filename, description, metadata, marker_line, metadata_lines)
        header.check_keys()
        return header

    def error(self, key: str | None, reason: str) -> HandlerFormatError:
        """An error at the line that sets ``key``, else at the ``**`` line."""
        line = self.marker_line
        if key is not None:
            key_re = re.compile(rf"""(^|[\s{{,-])["']?{re.escape(str(key))}["']?\s*:""")
            line = next((self.marker_line + 1 + index
                         for index, text in enumerate(self.metadata_lines)
                         if key_re.search(text)), self.marker_line)
        return HandlerFormatError(self.filename, line, reason)

    def check_keys(self) -> None:
        expected = ", ".join(METADATA_KEYS)
        if not isinstance(self.metadata, dict):
            raise self.error(None, f"the metadata must be a mapping with the keys {expected}, "
                                   f"got {type(self.metadata).__name__}")
        for key in self.metadata:
            if key not in METADATA_KEYS:
                raise self.error(key, f"unknown metadata key {key!r} (expected exactly "
                                      f"{expected})")
        for key in METADATA_KEYS:
            if key not in self.metadata:
                raise self.error(None, f"missing metadata key {key!r}")

    def handler_type(self) -> str:
        value = self.metadata["handler_type"]
        if value not in HANDLER_TYPES:
            raise self.error("handler_type", f"handler_type must be one of "
                                             f"{', '.join(HANDLER_TYPES)}, got {value!r}")
        return value

    def argument_spec(self, handler_type: str) -> list[list[str | None]]:
        value = self.metadata["argument_spec"]
        if not isinstance(value, list):
            raise self.error("argument_spec", f"argument_spec must be a list of {{name, type}} "
                                              f"mappings, got {type(value).__name__}")
        spec = [self._argument(item) for item in value]
        names = [name for name, _type in spec]
        expected = ARGUMENT_NAMES[handler_type]
        if names != expected:
            raise self.error("argument_spec", f"a {handler_type}'s argument_spec must name "
                                              f"exactly {expected}, got {names}")
        return spec

    def _argument(self, item: Any) -> list[str | None]:
        if not (isinstance(item, dict) and set(item) <= {"name", "type"}
                and isinstance(item.get("name"), str) and item["name"]
                and (item.get("type") is None or isinstance(item["type"], str) and item["type"])):
            raise self.error("argument_spec", f"each argument_spec item must be a mapping with a "
                                              f"'name' and a 'type' (a type name, or null), "
                                              f"got {item!r}")
        return [item["name"], item.get("type")]

    def required_capability(self) -> str:
        try:
            return normalize_capability(self.metadata["required_capability"])
        except InvalidNameError as error:
            raise self.error("required_capability", f"required_capability: {error}") from None


def _load_metadata(format_name: str, text: str, filename: str, marker_line: int) -> Any:
    """Parse the metadata text; errors point at the file line of the problem."""
    first_line = marker_line + 1
    if format_name.lower() in ("", "yaml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            problem = getattr(error, "problem", None) or str(error)
            raise HandlerFormatError(filename, first_line + (mark.line if mark else 0),
                                     f"invalid YAML metadata: {problem}") from None
    if format_name.lower() == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise HandlerFormatError(filename, first_line + error.lineno - 1,
                                     f"invalid JSON metadata: {error.msg}") from None
    raise HandlerFormatError(filename, marker_line, f"unknown metadata format {format_name!r} "
                             f"after '**' (use '**' or '**yaml' for YAML, '**json' for JSON)")
