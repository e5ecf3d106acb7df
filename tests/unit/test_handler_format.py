from pathlib import Path

import pytest

from mr.handlers import HandlerFormatError, compile_handler, parse_handler_source

EXAMPLES = Path(__file__).parents[2] / "handlers"

# Line numbers: 1 opening quotes, 2 description, 4 '**', 5-8 argument_spec, 9 handler_type,
# 10 required_capability, 11 closing quotes, 12 on: the code.
MAPPER = '''"""
Pass the arguments through.

**
argument_spec:
    -
        name: arguments
        type: list
handler_type: mapper
required_capability: none
"""
yield MrConfigureToReturn()
for key, value in arguments:
    yield (key, value)
'''


def edited(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def test_parses_description_metadata_and_keeps_the_source():
    source = parse_handler_source(MAPPER, "pass.py")
    assert source.description == "Pass the arguments through."
    assert source.argument_spec == [["arguments", "list"]]
    assert source.handler_type == "mapper"
    assert source.required_capability == "general"
    assert source.source_code == MAPPER


@pytest.mark.parametrize("marker", ["**yaml", "**YAML", "** yaml"])
def test_yaml_marker_is_case_insensitive(marker):
    assert parse_handler_source(edited(MAPPER, "\n**\n", f"\n{marker}\n")).handler_type == "mapper"


def test_json_metadata():
    text = '''"""
Sum.
**JSON
{"argument_spec": [{"name": "results", "type": null}],
 "handler_type": "reducer", "required_capability": "GPU"}
"""
return [(key, sum(values)) for key, values in results]
'''
    source = parse_handler_source(text)
    assert source.argument_spec == [["results", None]]
    assert (source.handler_type, source.required_capability) == ("reducer", "gpu")


def test_multi_line_description_is_dedented():
    text = edited(MAPPER, "Pass the arguments through.\n",
                  "    Pass the arguments\n      through, unchanged.\n")
    assert parse_handler_source(text).description == "Pass the arguments\n  through, unchanged."


@pytest.mark.parametrize("handler_type, body", [
    ("reducer", "return [(k, sum(v)) for k, v in results]\n"),
    ("reducer", "for k, v in results:\n    yield (k, sum(v))\n"),
    ("combiner", "for k, v in results:\n    yield (k, [v])\n"),
    # A nested function's return value does not make the handler's own generator invalid.
    ("reducer", "def total(v):\n    return sum(v)\nfor k, v in results:\n    yield k, total(v)\n"),
])
def test_reducers_and_combiners_yield_or_return(handler_type, body):
    text = edited(edited(MAPPER, "mapper", handler_type), "name: arguments", "name: results")
    text = text[:text.index('"""\nyield') + 4] + body
    assert parse_handler_source(text).handler_type == handler_type


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.py")), ids=lambda path: path.name)
def test_example_handlers_are_valid(path):
    parse_handler_source(path.read_text(), str(path))


@pytest.mark.parametrize("text, line, reason", [
    ("x = 1\n", 1, "must start with a docstring"),
    ("# comment\n\nx = 1\n", 3, "must start with a docstring"),
    ("", 1, "must start with a docstring"),
    (edited(MAPPER, "\n**\n", "\n"), 1, "no '**' line"),
    (edited(MAPPER, "\n**\n", "\n**toml\n"), 4, "unknown metadata format 'toml'"),
    (edited(MAPPER, "handler_type: mapper", "handler_type: mapper: x"), 9,
     "invalid YAML metadata: mapping values are not allowed here"),
    (edited(MAPPER, "**\nargument_spec:\n    -\n        name: arguments\n        type: list\n"
                    "handler_type: mapper\nrequired_capability: none\n",
            '**json\n{"argument_spec": [{"name": "arguments", "type": "list"}],\n'
            ' "handler_type": "mapper",\n "required_capability": none}\n'), 7,
     "invalid JSON metadata: Expecting value"),
    ('"""\n**\n- a list\n"""\nyield 1\n', 2, "metadata must be a mapping"),
    (edited(MAPPER, "required_capability: none", "required_capability: none\ntimeout: 3"), 11,
     "unknown metadata key 'timeout'"),
    (edited(MAPPER, "required_capability: none\n", ""), 4,
     "missing metadata key 'required_capability'"),
    (edited(MAPPER, "handler_type: mapper", "handler_type: mapr"), 9,
     "handler_type must be one of mapper, combiner, reducer, partitioner, got 'mapr'"),
    (edited(MAPPER, "name: arguments", "name: results"), 5,
     "a mapper's argument_spec must name exactly ['arguments'], got ['results']"),
    (edited(MAPPER, "    -\n        name: arguments\n        type: list\n", "  arguments\n"), 5,
     "argument_spec must be a list"),
    (edited(MAPPER, "        type: list\n", "        type: list\n        default: 1\n"), 5,
     "each argument_spec item must be a mapping"),
    (edited(MAPPER, "type: list", "type: ''"), 5, "each argument_spec item must be a mapping"),
    (edited(MAPPER, "required_capability: none", "required_capability: two words"), 10,
     "required_capability: capability 'two words' may contain only"),
    (edited(MAPPER, "    yield (key, value)\n", "    yield (key, value\n"), 14, "was never closed"),
    (MAPPER + "await something\n", 15, "'await' outside async function"),
    (MAPPER + "return arguments\n", 15, "'return <value>' in a handler that yields"),
    (MAPPER[:MAPPER.index("yield")] + "print(arguments)\n", 1, "a mapper must be a generator"),
    (edited(edited(MAPPER, "handler_type: mapper", "handler_type: partitioner"),
            "name: arguments", "name: key"), 12,
     "a partitioner returns the partition number of its key (an int); it does not yield"),
])
def test_format_errors_say_file_line_and_reason(text, line, reason):
    with pytest.raises(HandlerFormatError) as caught:
        parse_handler_source(text, "handlers/x.py")
    error = caught.value
    assert (error.filename, error.line) == ("handlers/x.py", line)
    assert reason in error.reason
    assert str(error) == f"handlers/x.py:{line}: {error.reason}"
    assert isinstance(error, ValueError)


def test_compiled_handler_runs_with_the_given_globals_only_when_called():
    text = MAPPER.replace("yield MrConfigureToReturn()", "raise SystemExit('ran too early')\n"
                          "yield MARKER")
    function = compile_handler(text, "mapper", "pass-through", {"MARKER": "m"})
    assert function.__name__ == "handler_pass_through"
    assert function.__globals__["__name__"] == "handler(pass-through)"
    with pytest.raises(SystemExit, match="ran too early"):
        list(function([]))


def test_compiled_handler_keeps_file_line_numbers_and_string_contents():
    text = MAPPER + 'TEXT = """first\nsecond"""\nraise RuntimeError(TEXT)\n'
    function = compile_handler(text, "mapper", "lines", {"MrConfigureToReturn": object})
    generator = function([["k", "v"]])
    with pytest.raises(RuntimeError) as caught:
        list(generator)
    assert str(caught.value) == "first\nsecond"  # JobX indented the body's string literals
    frame = caught.traceback[-1]
    assert (frame.path, frame.lineno + 1) == ("handler:lines", 17)
    assert "raise RuntimeError(TEXT)" in str(frame.statement)  # linecache knows the source


def test_compile_errors_name_the_handler():
    with pytest.raises(HandlerFormatError, match=r"^handler:broken:12: "):
        compile_handler(MAPPER.replace("yield MrConfigureToReturn()", "yield ("), "mapper",
                        "broken")
    with pytest.raises(ValueError, match="handler_type must be one of"):
        compile_handler(MAPPER, "splitter", "x")
