"""``mr local`` and ``mr info``: handler files run without servers, in the production executor."""
import collections
import json
import re
import subprocess
import textwrap

import pytest

from tests.cli.conftest import SCRIPTS, WORDCOUNT

DOCUMENTS = {"a": "The cat sat on the mat. The END", "b": "the hat; the cat!", "c": "Mat, mat"}


def pipeline(command: str, tmp_path, stdin: str = "") -> subprocess.CompletedProcess:
    """``command`` in bash with ``mr`` on the path, failing if any stage of it fails."""
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], input=stdin,
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PATH": f"{SCRIPTS}:/usr/bin:/bin", "HOME": str(tmp_path)})


def handler_file(tmp_path, name: str, handler_type: str, body: str) -> str:
    argument = "arguments" if handler_type == "mapper" else "results"
    path = tmp_path / f"{name}.py"
    path.write_text(f'"""\n{name}, for a test.\n\n**\nargument_spec:\n'
                    f'    - {{name: {argument}, type: list}}\nhandler_type: {handler_type}\n'
                    f'required_capability: none\n"""\n' + textwrap.dedent(body))
    return str(path)


def jsonl(pairs) -> str:
    return "".join(json.dumps(list(pair)) + "\n" for pair in pairs)


def expected_counts() -> dict[str, int]:
    return collections.Counter(word.lower() for text in DOCUMENTS.values()
                               for word in re.findall(r"\w+", text))


def test_map_sort_reduce_is_a_word_count(tmp_path):
    finished = pipeline(f"mr local map {WORDCOUNT}/count_map.py | LC_ALL=C sort "
                        f"| mr local reduce {WORDCOUNT}/count_reduce.py", tmp_path,
                        jsonl(DOCUMENTS.items()))
    assert finished.returncode == 0, finished.stderr
    counts = [json.loads(line) for line in finished.stdout.splitlines()]
    assert dict(counts) == expected_counts() and len(counts) == len(expected_counts())
    assert finished.stderr == "# MrConfigureToReturn()\n"


def test_map_reports_a_branching_directive_on_stderr(tmp_path):
    finished = pipeline(f"mr local map {WORDCOUNT}/map.py", tmp_path, jsonl(DOCUMENTS.items()))
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == "# MrConfigureToMap('count')\n"
    assert [json.loads(line) for line in finished.stdout.splitlines()] == [
        list(pair) for pair in DOCUMENTS.items()]


def test_a_combiner_between_map_and_reduce_keeps_the_counts(tmp_path):
    combiner = handler_file(tmp_path, "add_up", "combiner", """\
        totals = {}
        for word, count in results:
            totals[word] = totals.get(word, 0) + count
        for word, total in totals.items():
            yield (word, [total])
        """)
    finished = pipeline(f"mr local map {WORDCOUNT}/count_map.py | mr local combine {combiner} "
                        f"| tee combined | LC_ALL=C sort "
                        f"| mr local reduce {WORDCOUNT}/count_reduce.py", tmp_path,
                        jsonl(DOCUMENTS.items()))
    assert finished.returncode == 0, finished.stderr
    assert dict(json.loads(line) for line in finished.stdout.splitlines()) == expected_counts()
    combined = [json.loads(line) for line in (tmp_path / "combined").read_text().splitlines()]
    assert len(combined) == len(expected_counts())  # one line per word: it did combine


def test_sessions_start_empty_are_printed_and_can_be_given(tmp_path):
    mapper = handler_file(tmp_path, "remember", "mapper", """\
        print("starting with", S_LIST())
        S_SET("documents", len(arguments))
        yield MrConfigureToReturn()
        for name, _text in arguments:
            yield (name, 1)
        """)
    reducer = handler_file(tmp_path, "recall", "reducer", """\
        for key, values in results:
            yield (key, S_GET("documents"))
        """)
    mapped = pipeline(f"mr local map {mapper}", tmp_path, jsonl(DOCUMENTS.items()))
    assert mapped.returncode == 0, mapped.stderr
    assert mapped.stderr.splitlines() == ["starting with {}", "# MrConfigureToReturn()",
                                          '# session: {"documents": 3}']
    reduced = pipeline(f"""mr local reduce {reducer} --session '{{"documents": 3}}'""",
                       tmp_path, mapped.stdout)
    assert reduced.returncode == 0, reduced.stderr
    assert [json.loads(line) for line in reduced.stdout.splitlines()] == [
        ["a", 3], ["b", 3], ["c", 3]]
    without = pipeline(f"mr local reduce {reducer}", tmp_path, mapped.stdout)
    assert without.returncode == 0, without.stderr
    assert [json.loads(line)[1] for line in without.stdout.splitlines()] == [None] * 3


def test_a_failing_handler_exits_non_zero_with_its_traceback(tmp_path):
    mapper = handler_file(tmp_path, "divide", "mapper", """\
        yield MrConfigureToReturn()
        for key, value in arguments:
            yield (key, 1 / value)
        """)
    finished = pipeline(f"mr local map {mapper}", tmp_path, jsonl([["x", 2], ["y", 0]]))
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert "Traceback (most recent call last)" in finished.stderr
    assert 'File "handler:divide", line 12' in finished.stderr
    assert finished.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


@pytest.mark.parametrize("command, stdin, message", [
    (f"mr local reduce {WORDCOUNT}/count_reduce.py", jsonl([["a", 1], ["b", 1], ["a", 1]]),
     '<stdin>:3: key "a" comes again after other keys: the input is not sorted (pipe it through '
     'LC_ALL=C sort)'),
    (f"mr local map {WORDCOUNT}/count_map.py", '["a", "x"]\n{"not": "a pair"}\n',
     '<stdin>:2: expected a [key, value] pair, got {"not": "a pair"}'),
    (f"mr local map {WORDCOUNT}/count_map.py", "[1, 2\n", "<stdin>:1: not JSON: Expecting ',' "
                                                            "delimiter"),
    (f"mr local reduce {WORDCOUNT}/count_map.py", "",
     f"{WORDCOUNT}/count_map.py is a mapper; run it with mr local map"),
])
def test_bad_input_is_a_one_line_user_error(tmp_path, command, stdin, message):
    finished = pipeline(command, tmp_path, stdin)
    assert finished.returncode == 2
    assert finished.stderr == f"mr: error: {message}\n"


def test_info_prints_the_metadata_and_the_version(tmp_path):
    finished = pipeline(f"mr info {WORDCOUNT}/count_reduce.py", tmp_path)
    assert finished.returncode == 0, finished.stderr
    info = json.loads(finished.stdout)
    assert {key: info[key] for key in ("name", "handler_type", "required_capability",
                                       "argument_spec", "source_type")} == {
        "name": "count_reduce", "handler_type": "reducer", "required_capability": "general",
        "argument_spec": [["results", "list"]], "source_type": "python"}
    assert info["description"].startswith("Total the counts of each word of one document.")
    assert re.fullmatch(r"[0-9a-f]{64}", info["version"])
    changed = tmp_path / "count_reduce.py"
    changed.write_text((WORDCOUNT / "count_reduce.py").read_text() + "\n# changed\n")
    assert json.loads(pipeline(f"mr info {changed}", tmp_path).stdout)["version"] != (
        info["version"])


def test_info_of_an_invalid_file_names_the_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text('"""\nNo metadata.\n"""\nyield 1\n')
    finished = pipeline(f"mr info {broken}", tmp_path)
    assert finished.returncode == 2
    assert finished.stderr == (f"mr: error: {broken}:1: the docstring has no '**' line "
                               f"separating the description from the metadata\n")
