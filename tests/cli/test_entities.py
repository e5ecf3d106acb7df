"""``mr workflow|job|step|handler``: create, get, list, delete, and re-pointing steps."""
import itertools
import json
import subprocess

import pytest

from tests.cli.conftest import SCRIPTS, WORDCOUNT

REDUCER_SOURCE = "for key, values in results:\n    yield (key, sum(values))\n"


def test_workflow_create_get_list_delete(mr):
    assert json.loads(mr.ok("workflow", "create", "w1", "first"))["name"] == "w1"
    mr.ok("workflow", "create", "w2")
    assert mr.json("workflow", "get", "w1")["description"] == "first"
    assert mr.ok("workflow", "get", "w1").splitlines()[:2] == ["name:        w1",
                                                               "description: first"]
    assert [workflow["name"] for workflow in mr.json("workflow", "list")] == ["w1", "w2"]
    assert mr.ok("workflow", "list").splitlines() == ["w1\tfirst", "w2\t"]
    assert mr.ok("workflow", "delete", "w1") == "deleted workflow w1\n"
    assert mr.fails("workflow", "get", "w1") == "workflow 'w1' does not exist"
    assert [workflow["name"] for workflow in mr.json("workflow", "list")] == ["w2"]


def test_handler_from_a_file_is_stored_with_the_version_mr_info_reports(mr):
    mr.ok("workflow", "create", "w")
    path = str(WORDCOUNT / "count_map.py")
    stored = mr.json("handler", "create", "w", "counter", "--file", path)
    info = json.loads(mr.ok("info", path))
    assert stored["version"] == info["version"]
    assert mr.json("handler", "get", "w", "counter") == stored
    assert (stored["name"], stored["handler_type"], stored["required_capability"]) == (
        "counter", "mapper", "general")
    assert stored["source_code"] == (WORDCOUNT / "count_map.py").read_text()


def test_jobx_handler_create_takes_the_source_on_stdin(mr):
    mr.ok("workflow", "create", "w")
    mr.ok("w", "total", "Sums.", "python", "reducer", "-a", "results", "list", "-r", "GPU",
          script="mr_kv_handler_create", stdin=REDUCER_SOURCE)
    handler = mr.json("handler", "get", "w", "total")
    assert handler["source_code"] == REDUCER_SOURCE
    assert handler["argument_spec"] == [["results", "list"]]
    assert (handler["description"], handler["required_capability"]) == ("Sums.", "gpu")
    listed = mr.json("handler", "list", "w")
    assert [entry["name"] for entry in listed] == ["total"] and "source_code" not in listed[0]
    assert mr.ok("handler", "list", "w").split("\t")[:3] == ["total", "reducer", "gpu"]


@pytest.mark.parametrize("arguments, stdin, message", [
    (["python", "reducer", "-a", "results", "list"], "for k in results:\n  yield (k,\n",
     "handler:total:2: "),
    (["python", "reducer", "-a", "arguments", "list"], REDUCER_SOURCE,
     "a reducer's argument_spec must name exactly ['results']"),
    (["perl", "reducer", "-a", "results", "list"], REDUCER_SOURCE,
     "field 'source_type' must be one of 'python'"),
])
def test_a_raw_handler_that_cannot_work_is_refused(mr, arguments, stdin, message):
    mr.ok("workflow", "create", "w")
    assert message in mr.fails("handler", "create", "w", "total", "Sums.", *arguments,
                               stdin=stdin)
    assert mr.json("handler", "list", "w") == []


def test_handler_create_takes_a_file_or_the_metadata_not_both(mr):
    mr.ok("workflow", "create", "w")
    path = str(WORDCOUNT / "count_map.py")
    assert mr.fails("handler", "create", "w", "m", "Desc.", "-r", "gpu", "--file", path) == (
        "--file gives the handler's description, capability; do not give them too")
    assert mr.fails("handler", "create", "w", "m").startswith("give --file HANDLER_FILE, or "
                                                              "DESCRIPTION, SOURCE_TYPE")
    assert mr.fails("handler", "create", "w", "m", "--file", str(WORDCOUNT / "none.py")) == (
        f"{WORDCOUNT / 'none.py'}: cannot read: No such file or directory")


def test_steps_and_jobs(mr, wordcount):
    mr.ok("handler", "create", wordcount, "adder", "Sums.", "python", "reducer",
          "-a", "results", "list", stdin=REDUCER_SOURCE)
    step = json.loads(mr.ok(wordcount, "again", "Count again.", "count_map", "", "adder",
                            "--json", script="mr_kv_step_create"))
    assert step["combine_handler_name"] is None
    assert mr.json("step", "get", wordcount, "again") == step
    assert [s["name"] for s in mr.json("step", "list", wordcount)] == [
        "again", "count", "count_files", "count_node", "split"]
    assert "again\tcount_map\t-\tadder\tCount again." in mr.ok("step", "list", wordcount)
    shuffled = mr.json("step", "create", wordcount, "shuffled", "By partitions.", "count_map",
                       "", "adder", "--partitions", "3", "--sort-values", "--json")
    assert (shuffled["partitions"], shuffled["sort_values"], shuffled["partitioner"]) == (
        3, True, None)
    assert mr.fails("step", "create", wordcount, "unsorted", "No partitions.", "count_map", "",
                    "adder", "--partitioner", "adder") == (
        "step 'unsorted': partitioner needs partitions: it is an option of the shuffle")
    mr.ok("step", "delete", wordcount, "shuffled")

    mr.ok(wordcount, "recount", "Count again.", "again", script="mr_kv_job_create")
    job = mr.json("job", "get", wordcount, "recount")
    assert (job["initial_step_name"], job["description"]) == ("again", "Count again.")
    assert job["deadline_s"] is None  # the cluster default
    timed = mr.json("job", "create", wordcount, "timed", "Bounded.", "again", "--deadline-s", "30")
    assert timed["deadline_s"] == 30.0
    assert mr.fails("job", "create", wordcount, "never", "No.", "again", "--deadline-s", "0") == \
        "job 'never': field 'deadline_s' must be > 0, got 0.0"
    mr.ok("job", "delete", wordcount, "timed")
    assert [j["name"] for j in mr.json("job", "list", wordcount)] == [
        "recount", "wordcount", "wordcount_files", "wordcount_node"]
    assert mr.fails("step", "delete", wordcount, "again") == (
        f"step 'again' of workflow '{wordcount}' is used by job 'recount' (as "
        f"initial_step_name)")
    assert mr.ok("job", "delete", wordcount, "recount") == (
        f"deleted job 'recount' of workflow '{wordcount}'\n")
    mr.ok(wordcount, "again", script="mr_kv_step_delete")
    assert mr.fails("step", "get", wordcount, "again") == (
        f"step 'again' of workflow '{wordcount}' does not exist")


def test_set_handler_replaces_only_the_slots_given(mr, wordcount):
    mr.ok("handler", "create", wordcount, "adder", "Sums.", "python", "reducer",
          "-a", "results", "list", stdin=REDUCER_SOURCE)
    step = mr.json("step", "set-handler", wordcount, "count", "-r", "adder")
    assert (step["map_handler_name"], step["reduce_handler_name"]) == ("count_map", "adder")
    assert mr.json("step", "get", wordcount, "count") == step
    assert mr.fails("step", "set-handler", wordcount, "count", "-m", "sum_reduce") == (
        "step 'count': map_handler_name names handler 'sum_reduce', whose handler_type is "
        "'reducer', not 'mapper'")
    assert mr.fails("step", "set-handler", wordcount, "count").startswith("nothing to change")
    mr.ok(wordcount, "count", "-r", "count_reduce", script="mr_kv_step_set_handler")
    assert mr.json("step", "get", wordcount, "count")["reduce_handler_name"] == "count_reduce"


def test_update_handlers_re_points_every_step_using_a_handler(mr, wordcount):
    mr.ok("handler", "create", wordcount, "adder", "Sums.", "python", "reducer",
          "-a", "results", "list", stdin=REDUCER_SOURCE)
    mr.ok("step", "create", wordcount, "again", "Again.", "count_map", "", "count_reduce")
    simulated = mr.ok("step", "update-handlers", wordcount, "reducer", "count_reduce", "adder",
                      "-s")
    assert simulated.splitlines() == [
        f"would re-point step {step}: reduce_handler_name count_reduce -> adder"
        for step in ("again", "count", "count_node")]
    assert {s["name"]: s["reduce_handler_name"] for s in mr.json("step", "list", wordcount)} == {
        "again": "count_reduce", "count": "count_reduce", "count_node": "count_reduce",
        "split": "sum_reduce", "count_files": "sum_reduce"}

    mr.ok(wordcount, "reducer", "count_reduce", "adder", script="mr_kv_step_update_handlers")
    assert {s["name"]: s["reduce_handler_name"] for s in mr.json("step", "list", wordcount)} == {
        "again": "adder", "count": "adder", "count_node": "adder", "split": "sum_reduce",
        "count_files": "sum_reduce"}
    assert mr.ok("step", "update-handlers", wordcount, "reducer", "count_reduce", "adder") == (
        f"no step of workflow '{wordcount}' has 'count_reduce' as its reducer\n")
    assert mr.fails("step", "update-handlers", wordcount, "mapper", "count_map", "adder") == (
        "handler 'adder' is a reducer, not a mapper")
    assert mr.fails("step", "update-handlers", wordcount, "reducer", "adder", "gone") == (
        f"handler 'gone' of workflow '{wordcount}' does not exist")


@pytest.mark.parametrize("arguments, message", [
    (["job", "list", "nowhere"], "workflow 'nowhere' does not exist"),
    (["job", "get", "w", "bad/name"], "job: name 'bad/name' may contain only letters, digits, "
                                      "'_' and '-', and must start with a letter or digit"),
    (["job", "create", "w", "j", "Job.", "missing"], "job 'j': step 'missing' does not exist"),
    (["step", "create", "w", "s", "Step.", "nope", "", "nope2"],
     "step 's': handler 'nope' does not exist"),
    (["handler", "delete", "w", "ghost"], "handler 'ghost' of workflow 'w' does not exist"),
    (["workflow", "create", "w"], "workflow 'w' already exists"),
    (["workflow", "create", "a.b"], "workflow: workflow name 'a.b' may contain only letters, "
                                    "digits, '_' and '-', and must start with a letter or digit"),
])
def test_user_errors_are_one_line(mr, arguments, message):
    mr.ok("workflow", "create", "w")
    assert mr.fails(*arguments) == message


def test_an_unreachable_kv_is_a_user_error(mr):
    mr.env.update(MR_ETCD_PORT="1", MR_ETCD_TIMEOUT_S="0.5")
    assert mr.fails("workflow", "list").startswith("the KV store is not reachable: ")


def test_every_jobx_script_is_installed_and_shows_its_subcommands_help():
    from mr.cli.jobx import SCRIPTS as JOBX_SCRIPTS
    for name, subcommand in JOBX_SCRIPTS.items():
        finished = subprocess.run([str(SCRIPTS / name), "--help"], capture_output=True,
                                  text=True, timeout=30)
        assert finished.returncode == 0, (name, finished.stderr)
        words = list(itertools.takewhile(lambda word: not word.startswith("-"), subcommand))
        assert finished.stdout.startswith(f"usage: mr {' '.join(words)} "), name
