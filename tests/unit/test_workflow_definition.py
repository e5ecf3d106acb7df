"""Workflow definition directories: ``workflow.yaml`` beside handler files."""
import pytest

from mr.handlers.load import WorkflowDefinitionError, read_definition

MAPPER = '''"""
Returns its arguments.

**
argument_spec:
    - {name: arguments, type: list}
handler_type: mapper
required_capability: none
"""

yield MrConfigureToReturn()
for pair in arguments:
    yield pair
'''
REDUCER = MAPPER.replace("mapper", "reducer").replace("arguments", "results").replace(
    "yield MrConfigureToReturn()\n", "")


def definition_dir(tmp_path, jobs: str, step: str = "{mapper: same, reducer: keep}"):
    (tmp_path / "same.py").write_text(MAPPER)
    (tmp_path / "keep.py").write_text(REDUCER)
    (tmp_path / "workflow.yaml").write_text(
        f"workflow: timed\nsteps:\n  s: {step}\njobs:\n{jobs}")
    return tmp_path


def test_a_job_may_name_its_deadline(tmp_path):
    definition = read_definition(definition_dir(
        tmp_path, "  quick: {step: s, deadline_s: 600}\n  default: {step: s}\n"))
    deadlines = {job.name: job.deadline_s for job in definition.jobs}
    assert deadlines == {"quick": 600.0, "default": None}


def test_a_deadline_that_is_not_a_positive_number_names_the_file(tmp_path):
    with pytest.raises(WorkflowDefinitionError, match="workflow.yaml: job 'quick': field "
                                                      "'deadline_s' must be > 0"):
        read_definition(definition_dir(tmp_path, "  quick: {step: s, deadline_s: -1}\n"))


def test_steps_name_their_shuffle_and_jobs_their_input_and_output(tmp_path):
    definition = read_definition(definition_dir(
        tmp_path, "  files: {step: s, input: {url: /data/books}, output: {url: /data/counts}}\n",
        step="{mapper: same, reducer: keep, partitions: 4, sort_values: true}"))
    (step,), (job,) = definition.steps, definition.jobs
    assert (step.partitions, step.sort_values, step.partitioner) == (4, True, None)
    assert job.input == {"url": "/data/books", "format": "text"}
    assert job.output == {"url": "/data/counts", "format": "jsonl"}


def test_a_shuffle_option_without_partitions_names_the_file(tmp_path):
    with pytest.raises(WorkflowDefinitionError, match="workflow.yaml: .*sort_values needs "
                                                      "partitions"):
        read_definition(definition_dir(tmp_path, "  j: {step: s}\n",
                                       step="{mapper: same, reducer: keep, sort_values: true}"))
