"""Reading ``pipeline.yaml`` (deps, tmp dirs, references, the errors refused before anything
runs) and how a read URL relates to a written one — without any server."""
import itertools

import pytest

from mr.pipeline import PipelineError
from mr.pipeline.datasets import absolute, overlaps
from mr.pipeline.spec import load, parse
from tests.pipeline.conftest import EXAMPLE


def pipeline(tmp_path, steps: dict, **top):
    return parse({"pipeline": "p", "staging": "stage", **top, "steps": steps},
                 tmp_path / "pipeline.yaml")


_outputs = itertools.count()


def step(input="in", output=None, **more):
    return {"job": "w/j", "input": input, "output": output or f"out-{next(_outputs)}", **more}


def test_the_example_has_cascalogs_five_step_shape():
    spec = load(EXAMPLE / "pipeline.yaml")
    assert {name: step.deps for name, step in spec.steps.items()} == {
        "count": [], "totals": ["count"], "lengths": ["totals"], "initials": ["totals"],
        "report": ["count", "totals", "lengths", "initials"]}
    staging = str(EXAMPLE / "_staging")
    assert spec.staging == staging
    assert spec.steps["count"].output == {"url": f"{staging}/tmp/count/counts",
                                          "format": "jsonl"}
    assert spec.steps["totals"].input == {"url": f"{staging}/tmp/count/counts",
                                          "format": "jsonl"}
    assert spec.steps["count"].input == {"url": str(EXAMPLE / "data"), "format": "text"}
    assert spec.workflows == [EXAMPLE / "texts"]


def test_deps_last_all_names_and_references(tmp_path):
    spec = pipeline(tmp_path, {
        "a": step(output="a", tmp_dirs=["t"]),
        "b": step(output="b"),
        "c": step(input="${a.tmp.t}", output="c", deps=["b"]),
        "d": step(output="d", deps="all"),
        "e": step(input="${c.output}/part-00000", output="${staging}/e"),
    })
    assert [spec.steps[name].deps for name in "abcde"] == [
        [], ["a"], ["b", "a"], ["a", "b", "c"], ["d", "c"]]
    assert spec.steps["c"].input["url"] == str(tmp_path / "stage" / "tmp" / "a" / "t")
    assert spec.steps["e"].input["url"] == str(tmp_path / "c" / "part-00000")
    assert spec.steps["e"].output["url"] == str(tmp_path / "stage" / "e")
    assert spec.downstream("b") == ["c", "d", "e"]


def test_a_step_may_name_a_later_step_in_its_deps(tmp_path):
    spec = pipeline(tmp_path, {"a": step(output="a", deps=["b"]), "b": step(output="b",
                                                                             deps=[])})
    assert [step.name for step in spec.ordered()] == ["b", "a"]


@pytest.mark.parametrize("steps, message", [
    ({"a": step(deps=["x"])}, "step 'a': deps names 'x', which is not a step"),
    ({"a": step(output="a", deps=["b"]), "b": step(output="b")},
     "steps a, b depend on each other in a cycle"),
    ({"a": step(deps=["a"])}, "step 'a': depends on itself"),
    ({"a": step(output="o"), "b": step(output="o")}, "steps 'a' and 'b' both write"),
    ({"a": step(output="${tmp.nope}")}, "step 'a': ${tmp.nope} names nothing"),
    ({"a": step(input="${b.output}"), "b": step()}, "step 'a': ${b.output} names nothing"),
    ({"a": {"job": "nojob", "input": "i", "output": "o"}}, "job must be WORKFLOW/JOB"),
    ({"a": {**step(), "inputs": "x"}}, "step 'a': unknown keys inputs"),
    ({"a": step(input={"path": "x"})}, "step 'a': input must be a URL or {url: ..., format"),
    ({"a": step(deps=3)}, "deps must be last, all or a list of step names"),
])
def test_a_wrong_pipeline_is_refused_naming_the_file_and_the_step(tmp_path, steps, message):
    with pytest.raises(PipelineError) as refused:
        pipeline(tmp_path, steps)
    assert str(refused.value).startswith(f"{tmp_path / 'pipeline.yaml'}: ")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_file_that_is_not_a_pipeline_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("steps: [\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load(path)
    path.write_text("stages: {}\n")
    with pytest.raises(PipelineError, match="unknown keys stages"):
        load(path)
    with pytest.raises(PipelineError, match="cannot read"):
        load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("read, written, expected", [
    ("/d/out", "/d/out", True),
    ("/d", "/d/out", True),                     # a directory holding the output
    ("/d/out/part-00000", "/d/out", True),      # a part of it
    ("/d/out2", "/d/out", False),
    ("/d/other", "/d/out", False),
    ("/d/*", "/d/out", True),
    ("/d/o*/part-*", "/d/out", True),
    ("/d/*.txt", "/d/out", False),
    ("/e/*", "/d/out", False),
    ("s3://bucket/x", "s3://bucket/x/y", True),
    ("s3://bucket/x", "s3://other/x", False),
])
def test_what_a_read_may_read_of_an_output(read, written, expected):
    assert overlaps(read, written) is expected


def test_local_paths_become_absolute_and_urls_stay(tmp_path):
    assert absolute("data", str(tmp_path)) == str(tmp_path / "data")
    assert absolute("file:///x/y/") == "/x/y"
    assert absolute("s3://bucket/key/") == "s3://bucket/key"
