"""The web UI end to end, in a real headless Chromium (Debian's ``chromium``, driven by
Playwright), with authentication on, against ``mr run`` and against a local cluster behind the
shipped nginx site: log in with the admin token, browse a workflow and a handler, submit jobs
with the form, watch a request reach done with its result and its drawn tree, read an
invocation's output, cancel a long request, log out. Each step saves a screenshot under the
test's temporary directory and prints its path."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import gevent
import pytest

from mr.cli.cluster import start_cluster
from mr.handlers.load import read_definition

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[test]')")
expect = sync_api.expect

CHROMIUM = shutil.which("chromium")
CHECKOUT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60
#: How long the UI may take to show what a request does (it runs in the same machine).
SHOWN_WITHIN_MS = 30_000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/install-servers installs it): "
                             "the web UI is tested in a real browser")

NAP_WORKFLOW = {
    "workflow.yaml": """\
        workflow: sleepy
        description: Naps for as long as it is asked, saying so.
        steps:
          nap:
            description: Print, count, then sleep the seconds asked.
            mapper: nap_map
            reducer: nap_reduce
        jobs:
          nap:
            description: "Arguments: name -> seconds to nap."
            step: nap
        """,
    "nap_map.py": '''\
        """
        Print and count each nap, then take it.

        **
        argument_spec:
            -
                name: arguments
                type: list

        handler_type: mapper
        required_capability: none
        """
        import time

        yield MrConfigureToReturn()
        for name, seconds in arguments:
            print(f"{name} naps for {seconds} s")
            increment_counter("naps", "taken", 1)
            time.sleep(seconds)
            yield name, seconds
        ''',
    "nap_reduce.py": '''\
        """
        The seconds napped, by name.

        **
        argument_spec:
            -
                name: results
                type: list

        handler_type: reducer
        required_capability: none
        """
        for name, seconds in results:
            yield name, sum(seconds)
        ''',
}


@pytest.fixture
def nap_definition(tmp_path) -> Path:
    definition = tmp_path / "sleepy"
    definition.mkdir()
    for name, content in NAP_WORKFLOW.items():
        (definition / name).write_text(textwrap.dedent(content))
    return definition


@pytest.fixture(params=["mr run", "a local cluster behind nginx"])
def front_end(request, tmp_path, nap_definition):
    """The word count and the nap workflows served with authentication on, by ``mr run`` or
    by a local cluster (etcd, nsqd, a worker, gunicorn with two workers) behind the shipped
    nginx site; yields the address to browse and an admin token."""
    definitions = [CHECKOUT / "handlers" / "wordcount", nap_definition]
    if request.param == "mr run":
        yield from _embedded_mr(tmp_path, definitions)
        return
    if shutil.which("nginx", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin") is None:
        pytest.skip("nginx is not installed (scripts/install-servers installs it)")
    cluster = start_cluster(tmp_path / "cluster", [read_definition(path) for path in definitions],
                            workers=1, tie_to_parent=True, nginx=True,
                            extra_env={"MR_AUTH": "on", "GUNICORN_CMD_ARGS": "--workers 2"})
    try:
        yield cluster.nginx_url, cluster.env["MR_TOKEN"]
    finally:
        cluster.stop()


def _embedded_mr(tmp_path: Path, definitions: list[Path]):
    server = subprocess.Popen(
        [sys.executable, "-m", "mr.cli.main", "run", *map(str, definitions), "--port", "0"],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "MR_AUTH": "on", "MR_HTTP_HOST": "127.0.0.1",
             "MR_LOG_LEVEL": "warning"})
    try:
        address = token = None
        with gevent.Timeout(START_TIMEOUT_S, AssertionError("mr run did not start")):
            while address is None or token is None:
                line = server.stdout.readline()
                assert line, f"mr run exited with {server.wait()}"
                address = address or _found(r"listening on (http://\S+)", line)
                token = token or _found(r"admin token \(every workflow\): (\S+)", line)
        yield address, token
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _found(pattern: str, line: str) -> str | None:
    match = re.search(pattern, line)
    return match.group(1) if match else None


@pytest.fixture
def browser_page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(SHOWN_WITHIN_MS)
            expect.set_options(timeout=SHOWN_WITHIN_MS)
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshot(browser_page, tmp_path):
    directory = tmp_path / "screenshots"
    directory.mkdir()

    def take(name: str) -> None:
        path = directory / f"{len(list(directory.iterdir())) + 1:02d}-{name}.png"
        browser_page.screenshot(path=path, full_page=True)
        print(f"screenshot: {path}")

    return take


def test_browse_submit_follow_and_cancel_in_a_real_browser(front_end, browser_page,
                                                           screenshot):
    address, token = front_end
    page = browser_page

    # A page of the UI sends a browser without a token to the login page, then back.
    page.goto(f"{address}/ui/workflow/wordcount")
    expect(page.locator("h1")).to_have_text("Log in")
    screenshot("login")
    page.fill("#token", "mrt_admin.not-the-secret")
    page.click("button:has-text('Log in')")
    expect(page.locator("p.error")).to_contain_text("This token is not valid")
    page.fill("#token", token)
    page.click("button:has-text('Log in')")
    expect(page.locator("h1")).to_have_text("Workflow wordcount")
    expect(page.locator("p.note")).to_contain_text("Logged in with token admin (admin)")
    expect(page.locator("#jobs")).to_contain_text("wordcount_files")
    expect(page.locator("#steps")).to_contain_text("count_files")
    screenshot("workflow")

    # The index, and a handler's numbered source.
    page.click("a.home")
    expect(page.locator("table")).to_contain_text("sleepy")
    expect(page.locator("table")).to_contain_text("Counts the words of documents")
    screenshot("workflows")
    page.click("text=wordcount >> nth=0")
    page.click("#handlers >> text=count_map >> nth=0")
    expect(page.locator("h1")).to_have_text("Handler count_map")
    expect(page.locator("#version")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    expect(page.locator("#L1 td.line-number")).to_have_text("1")
    expect(page.locator("#source")).to_contain_text("yield MrConfigureToReturn()")
    screenshot("handler")

    # Submit the word count with the form: JSON arguments and a row.
    page.goto(f"{address}/ui/job/wordcount/wordcount")
    page.fill("#arguments", json.dumps({"one": "the cat and the hat", "two": "the end"}))
    page.fill("input[aria-label='name 1']", "three")
    page.fill("input[aria-label='value 1']", "a hat trick")
    page.click("button:has-text('Submit')")
    expect(page.locator("#state")).to_have_text("done")
    result = dict(_rows(page, "#result"))
    assert result["the"] == "3" and result["hat"] == "2" and result["trick"] == "1"
    assert len(result) == 7
    # The tree: the branching map and its three children, drawn and listed.
    expect(page.locator("#invocations tbody tr")).to_have_count(4)
    expect(page.locator("#invocations")).to_contain_text("split branch")
    assert page.locator("#invocations >> text=count leaf").count() == 3
    assert page.eval_on_selector("#graph", "img => img.complete && img.naturalWidth > 0")
    drawing = page.request.get(address + page.get_attribute("#graph", "src"))
    assert drawing.ok and "<svg" in drawing.text() and "done" in drawing.text()
    screenshot("request-done")

    # A nap: its counters, and its invocation's captured output.
    page.goto(f"{address}/ui/job/sleepy/nap")
    page.fill("#arguments", '{"cat": 0}')
    page.click("button:has-text('Submit')")
    expect(page.locator("#state")).to_have_text("done")
    assert _rows(page, "#counters", columns=3) == [["naps", "taken", "1"]]
    page.click("#invocations a")
    expect(page.locator("h1")).to_contain_text("Invocation")
    expect(page.locator("section.run")).to_contain_text("nap_map stdout")
    expect(page.locator("pre.output")).to_have_text("cat naps for 0 s\n")
    screenshot("invocation-output")

    # A long nap: running, refreshed, then cancelled with its button.
    page.goto(f"{address}/ui/job/sleepy/nap")
    page.fill("input[aria-label='name 1']", "bear")
    page.fill("input[aria-label='value 1']", "300")
    page.click("button:has-text('Submit')")
    expect(page.locator("#state")).to_have_text("running")
    expect(page.locator("#progress")).to_contain_text("map invocations known so far")
    screenshot("request-running")
    page.click("button:has-text('Cancel this request')")
    expect(page.locator("#state")).to_have_text("cancelled")
    expect(page.locator("button:has-text('Cancel this request')")).to_have_count(0)
    screenshot("request-cancelled")

    # The nap workflow's requests, newest first.
    page.goto(f"{address}/ui/workflow/sleepy/requests")
    states = [cells[2] for cells in _rows(page, "#requests", columns=5)]
    assert states == ["cancelled", "done"]
    screenshot("requests")

    # Logging out: the pages ask for a token again.
    page.click("button:has-text('Log out')")
    expect(page.locator("p.note")).to_contain_text("Logged out")
    page.goto(f"{address}/ui")
    expect(page.locator("h1")).to_have_text("Log in")


def _rows(page, table: str, columns: int = 2) -> list[list[str]]:
    """The text of each body row's first ``columns`` cells."""
    return page.eval_on_selector_all(
        f"{table} tbody tr",
        f"rows => rows.map(row => [...row.cells].slice(0, {columns})"
        f".map(cell => cell.innerText.trim()))")
