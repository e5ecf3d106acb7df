"""``pipeline.yaml``: named steps, each a job with its input and output, its dependencies and
its temporary directories (Cascalog-checkpoint's workflow, as a file)::

    pipeline: licence_words       # the name (default: the file's name without .yaml)
    staging: _staging             # checkpoints and temporary directories (default:
                                  # .mr-pipeline/<name> beside the file); any fsspec URL
    workflows: [texts]            # definition directories mr run serves when no URL is given
    url: http://127.0.0.1:8080    # a running mr to use instead (or mr pipeline run --url)
    steps:
      count:
        job: texts/count_words    # WORKFLOW/JOB
        input: {url: data, format: text}
        tmp_dirs: [counts]
        output: ${tmp.counts}
      totals:                     # deps: last, the default: the step above
        job: texts/totals
        input: ${count.tmp.counts}
        output: {url: results/totals, format: jsonl}

``deps`` is ``last`` (the step above; none for the first), ``all`` (every step above) or a list
of step names. In ``input`` and ``output``, ``${tmp.NAME}`` is one of the step's own temporary
directories, ``${STEP.tmp.NAME}`` and ``${STEP.output}`` another step's (which makes that step
a dependency), ``${staging}`` the staging URL. Relative paths are relative to the file.

Everything is checked when the file is read, before anything runs; every error is one line that
names the file and the step.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from mr.pipeline import datasets
from mr.pipeline.flow import PipelineError

PIPELINE_KEYS = {"pipeline", "description", "staging", "workflows", "url", "steps"}
STEP_KEYS = {"job", "description", "deps", "tmp_dirs", "input", "output"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")


@dataclasses.dataclass
class StepSpec:
    name: str
    workflow: str
    job: str
    input: dict[str, str]
    output: dict[str, str]
    #: Temporary directory name -> its URL under the staging URL.
    tmp_dirs: dict[str, str]
    deps: list[str]
    description: str = ""

    def definition(self) -> dict[str, Any]:
        """What a checkpoint records of the step: a change to any of it re-runs the step."""
        return {"workflow": self.workflow, "job": self.job, "input": self.input,
                "output": self.output, "tmp_dirs": self.tmp_dirs, "deps": self.deps}


@dataclasses.dataclass
class PipelineSpec:
    name: str
    path: Path
    staging: str
    workflows: list[Path]
    url: str | None
    #: In the order the file lists them.
    steps: dict[str, StepSpec]
    description: str = ""

    def ordered(self) -> list[StepSpec]:
        """The steps, every one after its dependencies (the file's order where it is free)."""
        placed: dict[str, StepSpec] = {}
        remaining = list(self.steps.values())
        while remaining:
            ready = [step for step in remaining if all(dep in placed for dep in step.deps)]
            if not ready:
                names = ", ".join(step.name for step in remaining)
                raise PipelineError(f"{self.path}: steps {names} depend on each other in a "
                                    f"cycle")
            for step in ready:
                placed[step.name] = step
                remaining.remove(step)
        return list(placed.values())

    def downstream(self, name: str) -> list[str]:
        """The steps that depend on ``name``, directly or not."""
        found: list[str] = []
        for step in self.ordered():
            if any(dep == name or dep in found for dep in step.deps):
                found.append(step.name)
        return found

    def record_url(self, name: str) -> str:
        """Where the step's record (state, request, checkpoint) is kept."""
        return f"{self.staging}/steps/{name}.json"


def load(path: str | Path) -> PipelineSpec:
    """The pipeline of the file at ``path``, checked whole; PipelineError naming what is wrong."""
    path = Path(path).resolve()
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PipelineError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path}: not valid YAML: {_one_line(error)}") from None
    return parse(document, path)


def parse(document: Any, path: Path) -> PipelineSpec:
    def fail(message: str) -> PipelineError:
        return PipelineError(f"{path}: {message}")

    if not isinstance(document, dict):
        raise fail("must be a mapping with steps")
    _only(document, PIPELINE_KEYS, fail, "")
    name = str(document.get("pipeline") or path.stem)
    base = str(path.parent)
    staging = datasets.absolute(str(document.get("staging") or f".mr-pipeline/{name}"), base)
    workflows = document.get("workflows") or []
    if not isinstance(workflows, list) or not all(isinstance(item, str) for item in workflows):
        raise fail("workflows must be a list of definition directories")
    steps_document = document.get("steps")
    if not isinstance(steps_document, dict) or not steps_document:
        raise fail("steps must be a mapping of step names to steps")
    steps: dict[str, StepSpec] = {}
    for step_name, body in steps_document.items():
        steps[str(step_name)] = _step(str(step_name), body, list(steps.values()), staging, base,
                                      fail)
    outputs: dict[str, str] = {}
    for step in steps.values():
        for dep in step.deps:
            if dep not in steps:
                raise fail(f"step {step.name!r}: deps names {dep!r}, which is not a step")
            if dep == step.name:
                raise fail(f"step {step.name!r}: depends on itself")
        if step.output["url"] in outputs:
            raise fail(f"steps {outputs[step.output['url']]!r} and {step.name!r} both write "
                       f"{step.output['url']}")
        outputs[step.output["url"]] = step.name
    spec = PipelineSpec(name, path, staging, [Path(base, item) for item in workflows],
                        document.get("url"), steps, str(document.get("description") or ""))
    spec.ordered()  # refuses a cycle now, before anything runs
    return spec


def _step(name: str, body: Any, above: list[StepSpec], staging: str, base: str,
          fail) -> StepSpec:
    if not _NAME.fullmatch(name):
        raise fail(f"step name {name!r}: use letters, digits, '_', '-' and '.'")
    if not isinstance(body, dict):
        raise fail(f"step {name!r} must be a mapping")
    _only(body, STEP_KEYS, fail, f"step {name!r}: ")
    job = body.get("job")
    if not isinstance(job, str) or job.count("/") != 1 or not all(job.split("/")):
        raise fail(f"step {name!r}: job must be WORKFLOW/JOB, got {job!r}")
    tmp_names = body.get("tmp_dirs") or []
    if not isinstance(tmp_names, list) or not all(isinstance(item, str) and _NAME.fullmatch(item)
                                                  for item in tmp_names):
        raise fail(f"step {name!r}: tmp_dirs must be a list of directory names")
    tmp_dirs = {tmp: f"{staging}/tmp/{name}/{tmp}" for tmp in tmp_names}
    deps = _deps(name, body.get("deps", "last"), above, fail)
    known = {step.name: step for step in above}
    referenced: list[str] = []

    def resolve(match: re.Match) -> str:
        parts = match.group(1).strip().split(".")
        if parts == ["staging"]:
            return staging
        if len(parts) == 2 and parts[0] == "tmp" and parts[1] in tmp_dirs:
            return tmp_dirs[parts[1]]
        if parts[0] in known and parts[1:] == ["output"]:
            referenced.append(parts[0])
            return known[parts[0]].output["url"]
        if parts[0] in known and len(parts) == 3 and parts[1] == "tmp" \
                and parts[2] in known[parts[0]].tmp_dirs:
            referenced.append(parts[0])
            return known[parts[0]].tmp_dirs[parts[2]]
        raise fail(f"step {name!r}: ${{{match.group(1)}}} names nothing: use tmp.NAME of this "
                   f"step's tmp_dirs, STEP.output or STEP.tmp.NAME of a step above, or staging")

    def data_spec(field: str, default_format: str) -> dict[str, str]:
        value = body.get(field)
        spec = {"url": value} if isinstance(value, str) else value
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str) \
                or set(spec) - {"url", "format"}:
            raise fail(f"step {name!r}: {field} must be a URL or {{url: ..., format: ...}}")
        url = _REFERENCE.sub(resolve, spec["url"])
        return {"url": datasets.absolute(url, base),
                "format": str(spec.get("format", default_format))}

    input_spec, output_spec = data_spec("input", "text"), data_spec("output", "jsonl")
    workflow, job_name = job.split("/")
    return StepSpec(name, workflow, job_name, input_spec, output_spec, tmp_dirs,
                    list(dict.fromkeys([*deps, *referenced])), str(body.get("description") or ""))


def _deps(name: str, value: Any, above: list[StepSpec], fail) -> list[str]:
    if value == "last":
        return [above[-1].name] if above else []
    if value == "all":
        return [step.name for step in above]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise fail(f"step {name!r}: deps must be last, all or a list of step names")
    return list(value)


def _only(mapping: dict, allowed: set[str], fail, where: str) -> None:
    unknown = sorted(set(map(str, mapping)) - allowed)
    if unknown:
        raise fail(f"{where}unknown keys {', '.join(unknown)}; allowed: "
                   f"{', '.join(sorted(allowed))}")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
