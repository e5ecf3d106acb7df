"""The web UI (mr.web.ui, docs/ui.rst) through Flask's test client: every page and form, what
each shows, the login and its session cookie, the tokens' roles and workflows, CSRF, escaping
and links under the app's root. tests/web/test_ui_browser.py drives it in a real browser."""
import html
import logging
import re
from html.parser import HTMLParser

import gevent
import pytest
from markupsafe import escape
from werkzeug.datastructures import MultiDict

from mr.auth.tokens import TokenStore
from mr.models import Handler, Workflow
from mr.settings import Settings
from mr.web.app import create_app
from mr.web.ui import request_pages, session_keys
from mr.web.ui.forms import SubmitForm
from tests.web.test_api import assert_error
from tests.web.workflow import WORKFLOW

WAIT_S = 30
HOSTILE = "<script>alert('x')</script>"


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def text(response) -> str:
    """What a browser shows of the page: its text, whitespace collapsed."""
    parser = _Text()
    parser.feed(response.get_data(as_text=True))
    return " ".join(" ".join(parser.parts).split())


def page(response, status=200) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def csrf_of(client, path="/ui/job/w/j") -> str:
    """The CSRF token that the forms of the session's pages carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page(client.get(path)))
    assert found, "the page has no form"
    return found.group(1)


def submit(client, job="j", **form):
    token = csrf_of(client, f"/ui/job/{WORKFLOW}/{job}")
    return client.post(f"/ui/job/{WORKFLOW}/{job}", data={"csrf_token": token, **form})


def submitted(client, job="j", **form) -> str:
    """Submit through the form; the new request's id, from where it sends the browser."""
    response = submit(client, job, **form)
    assert response.status_code == 303, response.get_data(as_text=True)
    found = re.fullmatch(rf"/ui/request/{WORKFLOW}/([0-9a-f]{{32}})", response.location)
    assert found, response.location
    return found.group(1)


def finished(engine, request_id):
    request = engine.wait(WORKFLOW, request_id, WAIT_S)
    assert request is not None, "the request did not finish"
    return request


@pytest.fixture
def worked(make_engine):
    """Authentication off (embedded on loopback), with a worker: requests finish."""
    engine = make_engine(with_worker=True)
    return engine, create_app(engine).test_client()


@pytest.fixture
def idle(make_engine):
    """Authentication off, no worker: requests stay running."""
    engine = make_engine()
    return engine, create_app(engine).test_client()


@pytest.fixture
def secured(make_engine):
    """Authentication on, with a worker; ``login(role, *workflows)`` makes a token and logs a new
    browser in with it."""
    engine = make_engine(with_worker=True, auth="on")
    app = create_app(engine)
    tokens = TokenStore(engine.kv, engine.keys)

    def login(name, role, *workflows):
        client = app.test_client()
        secret = tokens.create(name, role, workflows)[1]
        response = client.post("/ui/login", data={"csrf_token": csrf_of(client, "/ui/login"),
                                                  "token": secret})
        assert response.status_code == 303 and response.location == "/ui"
        return client

    return engine, app, tokens, login


# Browsing the definitions

def test_the_index_lists_the_workflows_with_their_jobs_counted(worked):
    engine, client = worked
    engine.store.create(Workflow(name="other", description=f"not served {HOSTILE}"))
    shown = page(client.get("/ui"))
    assert re.search(rf'<a href="/ui/workflow/{WORKFLOW}">{WORKFLOW}</a></td>\s*<td>the front '
                     rf"end&#39;s test workflow</td>\s*<td class=\"n\">2</td>", shown)
    # MR_WORKFLOW_NAMES leaves "other" out: listed, not linked; its description escaped
    assert "other <span class=\"muted\">(not served here)</span>" in shown
    assert escape(HOSTILE) in shown and HOSTILE not in shown
    assert "authentication is off" in text(client.get("/ui"))


def test_a_workflow_page_shows_its_jobs_steps_and_handlers(worked):
    _, client = worked
    shown = page(client.get(f"/ui/workflow/{WORKFLOW}"))
    assert '<a href="/ui/job/w/j">j</a></td>\n    <td>job j</td>\n    <td>s</td>' in shown
    assert '<a href="/ui/job/w/fails">fails</a>' in shown
    assert re.search(r"<td>s_fails</td>\s*<td>step s_fails</td>\s*<td><a href=\"/ui/workflow/w/"
                     r"handler\?name=boom\">boom</a></td>\s*<td><span class=\"muted\">group by "
                     r"key</span></td>\s*<td><a href=\"/ui/workflow/w/handler\?name=r\">r</a>",
                     shown)
    assert '<a href="/ui/workflow/w/requests">Recent requests</a>' in shown


def test_a_handler_page_numbers_its_source_escaped_and_shows_its_version(worked):
    engine, client = worked
    source = f"# {HOSTILE}\nyield MrConfigureToReturn()\nfor k, v in arguments:\n    yield k, v\n"
    stored = engine.store.create(Handler(
        workflow=WORKFLOW, name="hostile", description="a <b>bold</b> mapper",
        argument_spec=[["arguments", "list"]], source_type="python", source_code=source,
        handler_type="mapper"))
    shown = page(client.get(f"/ui/workflow/{WORKFLOW}/handler?name=hostile"))
    assert f'<code id="version">{stored.version}</code>' in shown
    assert (f'<tr id="L1"><td class="line-number">1</td><td><pre># {escape(HOSTILE)}'
            f'</pre></td></tr>') in shown
    assert ('<tr id="L4"><td class="line-number">4</td><td><pre>    yield k, v</pre></td></tr>'
            in shown)
    assert 'id="L5"' not in shown
    assert "<script>" not in shown and "<b>bold</b>" not in shown
    assert "no step" in text(client.get(f"/ui/workflow/{WORKFLOW}/handler?name=hostile"))
    assert "step s (reducer), step s_fails (reducer)" in text(
        client.get(f"/ui/workflow/{WORKFLOW}/handler?name=r"))


@pytest.mark.parametrize("path, status, fragment", [
    ("/ui/workflow/nope", 404, "workflow 'nope' is not served here"),
    ("/ui/workflow/w/handler", 400, "query parameter 'name' names the handler"),
    ("/ui/workflow/w/handler?name=nope", 404, "handler 'nope' of workflow 'w' does not exist"),
    ("/ui/job/w/nope", 404, "job 'nope' of workflow 'w' does not exist"),
    ("/ui/request/w/" + "0" * 32, 404, "does not exist"),
    ("/ui/request/w/not-an-id", 400, "ValidationError"),
    ("/ui/workflow/w/requests?before=yesterday", 400, "query parameter 'before'"),
])
def test_an_error_is_a_page_saying_what_the_api_would(worked, path, status, fragment):
    _, client = worked
    response = client.get(path)
    page(response, status)
    assert fragment in html.unescape(text(response))
    assert "Back to the workflows" in text(response)


# Submitting, and the request's page

def test_the_job_page_describes_the_job_and_offers_the_form(worked):
    _, client = worked
    shown = text(client.get(f"/ui/job/{WORKFLOW}/j"))
    assert "Job j job j Step s Mapper m" in shown
    assert "Reducer r" in shown
    assert "Arguments, as a JSON object" in shown and "Deadline in seconds" in shown


def test_the_form_submits_a_request_whose_page_shows_its_result(worked):
    engine, client = worked
    request_id = submitted(client, arguments='{"a": 1, "b": 2}', name=["b", "c", ""],
                           value=["40", "3", ""])
    request = finished(engine, request_id)
    assert request.state == "done" and not request.blocking
    shown = page(client.get(f"/ui/request/{WORKFLOW}/{request_id}"))
    assert '<span class="state done" id="state">done</span>' in shown
    # the rows override the JSON object
    pairs = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", shown)
    assert pairs == [("a", "1"), ("b", "40"), ("c", "3")]
    assert "3 pairs." in text(client.get(f"/ui/request/{WORKFLOW}/{request_id}"))
    assert "refresh.js" not in shown and "data-refresh-seconds" not in shown
    assert "Cancel this request" not in shown
    assert f'<img id="graph" src="/ui/request/w/{request_id}/graph.svg"' in shown
    root = request.root_invocation_id
    assert f'href="/ui/request/w/{request_id}/invocation?id={root}"' in shown
    assert re.search(r'<span class="state done">done</span></td>\s*<td class="n">[0-9.]+ '
                     r'(ms|s|µs)</td>\s*<td class="n">1</td>', shown)
    assert engine.store.get(type(request), WORKFLOW, request_id).context["requester_ip"]


def test_the_form_reads_a_deadline(idle):
    engine, client = idle
    request_id = submitted(client, deadline_s="12.5")
    request = engine.get_request(WORKFLOW, request_id)
    assert request.deadline - request.created_at == pytest.approx(12.5)


@pytest.mark.parametrize("form, fragment", [
    ({"arguments": '{"a": '}, "the arguments are not JSON"),
    ({"arguments": '{"a": NaN}'}, "NaN is not JSON"),
    ({"arguments": "[1, 2]"}, "must be a JSON object"),
    ({"arguments": "[" * 70 + "]" * 70}, "must be a JSON object"),
    ({"arguments": '{"a": ' + "[" * 70 + "]" * 70 + "}"}, "nested more than 64 levels"),
    ({"name": ["", "x"], "value": ["lonely", ""]}, "the row of value 'lonely' has no name"),
    ({"deadline_s": "soon"}, "the deadline must be a number of seconds > 0, got 'soon'"),
    ({"deadline_s": "-1"}, "the deadline must be a number of seconds > 0"),
    ({"deadline_s": "inf"}, "the deadline must be a number of seconds > 0"),
    ({"arguments": '{"big": 18446744073709551616}'}, "the arguments cannot be stored"),
])
def test_a_form_that_is_not_valid_is_shown_again_saying_why(idle, form, fragment):
    engine, client = idle
    response = submit(client, **form)
    shown = page(response, 400)
    found = re.search(r'<p class="error" id="failure">(.*?)</p>', shown, re.S)
    assert found and fragment in html.unescape(found.group(1))
    if "arguments" in form:  # what was typed is kept
        assert f">{escape(form['arguments'].strip())}</textarea>" in shown
    assert engine.requests.running_count(WORKFLOW) == 0


def test_a_failed_request_shows_its_error_traceback_and_output(worked):
    engine, client = worked
    request_id = submitted(client, job="fails")
    request = finished(engine, request_id)
    assert request.state == "failed"
    shown = page(client.get(f"/ui/request/{WORKFLOW}/{request_id}"))
    error = text(client.get(f"/ui/request/{WORKFLOW}/{request_id}"))
    assert "Error ValueError : no good" in error
    assert re.search(r'<pre class="output" id="traceback">Traceback \(most recent call last\):'
                     r'.*raise ValueError\(&#39;no good&#39;\)', shown, re.S)
    assert "stdout about to fail" in error
    failed = request.failed_invocation_id
    assert f'href="/ui/request/w/{request_id}/invocation?id={failed}"' in shown
    assert '<tr class="failed-path">' in shown


def test_an_invocation_page_shows_its_runs_and_what_they_printed(worked):
    engine, client = worked
    request = finished(engine, submitted(client, job="fails"))
    path = f"/ui/request/{WORKFLOW}/{request.request_id}/invocation"
    shown = text(client.get(f"{path}?id={request.failed_invocation_id}"))
    assert "s_fails · leaf · failed" in shown
    assert "ValueError : no good" in shown
    assert re.search(r"failed on \S+:\d+, attempt 1, started .* UTC", shown)
    assert "boom stdout about to fail" in shown
    assert_page_error(client.get(f"{path}?id=nope"), 400, "query parameter 'id'")
    assert_page_error(client.get(f"{path}?id={'0' * 32}"), 404, "has no invocation")
    assert_page_error(client.get(path), 400, "is not 32 lowercase hex digits")


def assert_page_error(response, status, fragment):
    page(response, status)
    assert fragment in html.unescape(text(response))


def test_the_request_page_embeds_the_tree_drawn_through_the_session(worked):
    engine, client = worked
    request_id = submitted(client)
    finished(engine, request_id)
    response = client.get(f"/ui/request/{WORKFLOW}/{request_id}/graph.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    drawing = response.get_data(as_text=True)
    assert "<svg" in drawing and f"request {request_id[:12]}" in drawing and "done" in drawing
    assert_page_error(client.get(f"/ui/request/{WORKFLOW}/{request_id}/graph.svg?collapse=x"),
                      400, "query parameter 'collapse'")


def test_a_running_request_refreshes_itself_and_can_be_cancelled(idle):
    engine, client = idle
    request_id = submitted(client)
    path = f"/ui/request/{WORKFLOW}/{request_id}"
    shown = page(client.get(path))
    assert '<span class="state running" id="state">running</span>' in shown
    assert f'data-refresh-seconds="{request_pages.REFRESH_SECONDS}"' in shown
    assert '<script src="/ui/refresh.js" defer></script>' in shown
    assert re.search(r'<progress max="1" value="0"></progress> 0 of 1 map invocations', shown)
    script = client.get("/ui/refresh.js")
    assert script.status_code == 200 and "location.reload()" in script.get_data(as_text=True)
    response = client.post(f"{path}/cancel", data={"csrf_token": csrf_of(client, path)})
    assert response.status_code == 303 and response.location == path
    assert engine.get_request(WORKFLOW, request_id).state == "cancelled"
    shown = page(client.get(path))
    assert '<span class="state cancelled" id="state">cancelled</span>' in shown
    assert "data-refresh-seconds" not in shown and "Cancel this request" not in shown
    assert "Cancel asked" in shown


def test_recent_requests_are_listed_newest_first_a_page_at_a_time(worked, monkeypatch):
    engine, client = worked
    monkeypatch.setattr(request_pages, "RECENT_REQUESTS", 2)
    ids = [submitted(client, arguments=f'{{"n": {n}}}') for n in range(3)]
    for request_id in ids:
        finished(engine, request_id)
    shown = page(client.get(f"/ui/workflow/{WORKFLOW}/requests"))
    assert re.findall(r"/ui/request/w/([0-9a-f]{32})", shown) == [ids[2], ids[1]]
    assert re.search(r"<td>j</td>\s*<td><span class=\"state done\">done</span></td>\s*<td>"
                     r"[0-9-]+ [0-9:]+ UTC</td>\s*<td class=\"n\">[0-9.]+ (ms|s|µs)</td>", shown)
    older = re.search(r'<a rel="next" href="([^"]+)">Older requests</a>', shown).group(1)
    shown = page(client.get(html.unescape(older)))
    assert re.findall(r"/ui/request/w/([0-9a-f]{32})", shown) == [ids[0]]
    assert "Older requests" not in shown


def test_a_result_is_shown_bounded(worked, monkeypatch):
    engine, client = worked
    monkeypatch.setattr(request_pages, "RESULT_ROWS", 2)
    request_id = submitted(client, arguments='{"a": 1, "b": 2, "c": 3}')
    finished(engine, request_id)
    shown = page(client.get(f"/ui/request/{WORKFLOW}/{request_id}"))
    assert re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", shown) == [("a", "1"),
                                                                            ("b", "2")]
    assert "3 pairs; the first 2 shown" in html.unescape(text(
        client.get(f"/ui/request/{WORKFLOW}/{request_id}")))


def test_what_users_wrote_is_escaped_everywhere(worked):
    engine, client = worked
    request_id = submitted(client, name=[HOSTILE], value=["1"])
    finished(engine, request_id)
    shown = page(client.get(f"/ui/request/{WORKFLOW}/{request_id}"))
    assert "<script>alert" not in shown
    assert f"<tr><td>{escape(HOSTILE)}</td><td>1</td></tr>" in shown


def test_a_rows_value_is_read_as_json_when_it_is_json_else_as_text():
    form = SubmitForm.read(MultiDict([
        ("arguments", '{"a": 1, "b": 2}'), ("name", "b"), ("value", "[1, 2]"),
        ("name", "c"), ("value", "plain words"), ("name", "d"), ("value", '"quoted"'),
        ("name", "e"), ("value", "NaN"), ("name", ""), ("value", " ")]))
    assert form.arguments() == {"a": 1, "b": [1, 2], "c": "plain words", "d": "quoted",
                                "e": "NaN"}
    assert form.shown_rows[:4] == [("b", "[1, 2]"), ("c", "plain words"), ("d", '"quoted"'),
                                   ("e", "NaN")]
    assert form.shown_rows[4:] == [("", "")] * 3


def test_every_page_forbids_what_it_does_not_load(worked):
    _, client = worked
    for path in ("/ui", "/ui/workflow/nope", "/ui/login"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/ui").headers["Cache-Control"] == "no-store"
    assert client.get("/ui/ui.css").mimetype == "text/css"


def test_links_stay_under_the_apps_root(worked):
    """Behind a proxy that mounts the app under a path, every link and redirect keeps it."""
    engine, client = worked
    root = "http://mr.example/behind/a/proxy/"
    shown = page(client.get("/ui", base_url=root))
    assert 'href="/behind/a/proxy/ui/ui.css"' in shown
    assert 'href="/behind/a/proxy/ui/workflow/w"' in shown
    form = page(client.get("/ui/job/w/j", base_url=root))
    assert 'action="/behind/a/proxy/ui/job/w/j"' in form
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = client.post("/ui/job/w/j", base_url=root, data={"csrf_token": token})
    assert response.status_code == 303
    assert response.location.startswith("/behind/a/proxy/ui/request/w/")
    assert not re.search(r'(href|src|action)="/(?!behind/a/proxy/)', page(
        client.get(response.location.removeprefix("/behind/a/proxy"), base_url=root)))


# Forms need the session's CSRF token

@pytest.mark.parametrize("path", ["/ui/job/w/j", "/ui/request/w/" + "0" * 32 + "/cancel",
                                  "/ui/logout", "/ui/login"])
@pytest.mark.parametrize("sent", [None, "", "forged"])
def test_a_form_without_the_sessions_csrf_token_is_refused(idle, path, sent):
    engine, client = idle
    csrf_of(client)  # the session has a token: the form must carry the same
    response = client.post(path, data={} if sent is None else {"csrf_token": sent})
    assert_page_error(response, 400, "the form did not come from a page of this session")
    assert "<b>InvalidForm</b>" in page(response, 400)
    assert engine.requests.running_count(WORKFLOW) == 0


def test_a_form_from_another_browser_is_refused(idle):
    """A CSRF token is good for its own session only."""
    engine, client = idle
    other = create_app(engine).test_client()
    response = client.post("/ui/job/w/j", data={"csrf_token": csrf_of(other)})
    assert_page_error(response, 400, "did not come from a page of this session")


# Logging in

def test_without_a_token_a_page_sends_the_browser_to_the_login_page(secured):
    _, app, _, _ = secured
    client = app.test_client()
    response = client.get("/ui/workflow/w?x=1")
    assert response.status_code == 302
    assert response.location == "/ui/login?next=/ui/workflow/w?x%3D1"
    shown = text(client.get(response.location))
    assert "Paste an API token" in shown
    assert re.search(r'<input type="hidden" name="next" value="/ui/workflow/w\?x=1">',
                     page(client.get(response.location)))
    assert client.get("/ui/ui.css").status_code == 200  # the login page's look needs no token
    # a form sent without a session goes to the login page too, to no next page
    response = client.post("/ui/job/w/j", data={})
    assert response.status_code == 302 and response.location == "/ui/login"
    # a method a page does not take is a 405 to anyone, as it is on the open endpoints
    response = client.put("/ui/workflow/w")
    assert_error(response, 405, "MethodNotAllowed")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}


def test_logging_in_keeps_the_token_in_an_httponly_session_cookie(secured):
    engine, app, tokens, _ = secured
    client = app.test_client()
    secret = tokens.create("alice", "admin")[1]
    response = client.post("/ui/login", data={
        "csrf_token": csrf_of(client, "/ui/login"), "token": secret, "next": "/ui/job/w/j"})
    assert response.status_code == 303 and response.location == "/ui/job/w/j"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("mr_ui=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    shown = text(client.get("/ui/job/w/j"))
    assert "Logged in with token alice (admin)." in shown
    assert "token alice (admin)" in shown
    request_id = submitted(client)
    assert finished(engine, request_id).context["token"] == "alice"
    # logging out forgets it: the next page asks for a token again
    response = client.post("/ui/logout", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 303 and response.location == "/ui/login"
    assert "Logged out" in text(client.get("/ui/login"))
    assert client.get("/ui").status_code == 302


@pytest.mark.parametrize("presented, fragment", [
    ("", "Paste a token to log in."),
    ("mrt_nobody.secret", "This token is not valid"),
])
def test_a_token_that_is_not_valid_does_not_log_in(secured, presented, fragment):
    _, app, _, _ = secured
    client = app.test_client()
    response = client.post("/ui/login", data={"csrf_token": csrf_of(client, "/ui/login"),
                                              "token": presented})
    page(response, 400)
    assert fragment in text(response)
    assert client.get("/ui").status_code == 302


@pytest.mark.parametrize("next_page", ["https://evil.example/ui", "//evil.example/ui",
                                       "/request/w/x", "/ui\\..\\x", "javascript:alert(1)"])
def test_login_goes_back_to_pages_of_the_ui_only(secured, next_page):
    _, app, tokens, _ = secured
    client = app.test_client()
    response = client.post("/ui/login", data={
        "csrf_token": csrf_of(client, "/ui/login"), "token": tokens.create("a", "read")[1],
        "next": next_page})
    assert response.status_code == 303 and response.location == "/ui"


def test_a_revoked_token_sends_the_browser_back_to_the_login_page(secured):
    _, _, tokens, login = secured
    client = login("bob", "read")
    assert client.get("/ui").status_code == 200
    tokens.revoke("bob")
    with gevent.Timeout(1):  # the watch brings the deletion
        while (response := client.get("/ui/workflow/w")).status_code == 200:
            gevent.sleep(0.01)
    assert response.status_code == 302 and response.location.startswith("/ui/login")
    assert "not valid any more (revoked?)" in text(client.get(response.location))


def test_the_api_does_not_take_the_sessions_token(secured):
    """The cookie is the UI's: a page of the site cannot make the API act with it."""
    _, _, _, login = secured
    client = login("carol", "admin")
    assert_error(client.get("/job/w/j/definition"), 401, "Unauthorized")


def test_a_bearer_header_opens_the_pages_too(secured):
    _, app, tokens, _ = secured
    headers = {"Authorization": f"Bearer {tokens.create('tool', 'read')[1]}"}
    assert "token tool (read)" in text(app.test_client().get("/ui", headers=headers))


def test_with_authentication_off_no_login_is_asked(worked):
    _, client = worked
    assert client.get("/ui/workflow/w").status_code == 200
    assert "Authentication is off here" in text(client.get("/ui/login"))
    response = client.post("/ui/login", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 303 and response.location == "/ui"


# Roles and workflows

def test_a_read_token_browses_but_neither_submits_nor_cancels(secured):
    engine, _, _, login = secured
    admin, reader = login("root", "admin"), login("reader", "read")
    request_id = submitted(admin)
    finished(engine, request_id)
    assert "done" in text(reader.get(f"/ui/request/w/{request_id}"))
    job_page = text(reader.get("/ui/job/w/j"))
    assert "only submit and admin tokens run jobs" in job_page and "Deadline" not in job_page
    token = csrf_of(reader)
    assert_page_error(reader.post("/ui/job/w/j", data={"csrf_token": token}), 403,
                      "token 'reader' has the role read, which may not POST /ui/job/w/j")
    assert_page_error(reader.post(f"/ui/request/w/{request_id}/cancel",
                                  data={"csrf_token": token}), 403, "has the role read")


def test_a_submit_token_sees_and_cancels_only_its_own_requests(make_engine):
    engine = make_engine(auth="on")  # no worker: requests stay running
    app = create_app(engine)
    tokens = TokenStore(engine.kv, engine.keys)
    browsers = {}
    for name in ("alice", "bob"):
        browsers[name] = app.test_client()
        browsers[name].post("/ui/login", data={
            "csrf_token": csrf_of(browsers[name], "/ui/login"),
            "token": tokens.create(name, "submit", ["w"])[1]})
    alice, bob = browsers["alice"], browsers["bob"]
    mine = submitted(alice)
    theirs = submitted(bob)
    listed = page(alice.get("/ui/workflow/w/requests"))
    assert mine in listed and theirs not in listed
    assert "Cancel this request" in text(alice.get(f"/ui/request/w/{mine}"))
    for path in (f"/ui/request/w/{theirs}", f"/ui/request/w/{theirs}/graph.svg",
                 f"/ui/request/w/{theirs}/invocation?id={'0' * 32}"):
        assert_page_error(alice.get(path), 403, "may only see and cancel the requests it "
                                                "submitted")
    assert_page_error(alice.post(f"/ui/request/w/{theirs}/cancel",
                                 data={"csrf_token": csrf_of(alice)}), 403, "requests it")
    assert engine.get_request("w", theirs).state == "running"


def test_a_token_of_some_workflows_sees_only_those(secured):
    engine, _, _, login = secured
    engine.store.create(Workflow(name="hidden", description="not for this token"))
    client = login("scoped", "read", "w")
    shown = text(client.get("/ui"))
    assert "w the front end's test workflow" in shown and "hidden" not in shown
    assert_page_error(client.get("/ui/workflow/hidden"), 403, "is not for workflow 'hidden'")


# The session: which requests open it, and its key

def test_a_call_without_cookies_opens_no_signed_session(worked, monkeypatch):
    """The API's calls send no cookies: each gets a new session, made without the signer;
    a browser's pages still get theirs."""
    _, client = worked
    interface = client.application.session_interface
    signers = []
    monkeypatch.setattr(interface, "get_signing_serializer",
                        lambda app, made=interface.get_signing_serializer:
                        signers.append(made(app)) or signers[-1])
    response = client.get("/job/w/j/definition")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    assert signers == []
    csrf_of(client)  # a page: its session keeps the forms' CSRF token in the cookie
    assert signers and client.get_cookie("mr_ui") is not None
    signers.clear()
    assert client.get("/job/w/j/definition").status_code == 200  # now it sends the cookie
    assert signers != []


def test_the_session_key_is_the_setting_else_derived_else_random(caplog):
    base = Settings.load({})
    assert session_keys.secret_key(base.with_overrides(ui_secret_key="k1")) == b"k1"
    derived = session_keys.secret_key(base.with_overrides(message_secret="shared"))
    assert derived == session_keys.secret_key(base.with_overrides(message_secret="shared"))
    assert derived not in (b"shared", session_keys.secret_key(
        base.with_overrides(message_secret="other")))
    with caplog.at_level(logging.INFO, logger=session_keys.__name__):
        first = session_keys.secret_key(base.with_overrides(kv_backend="etcd"))
    assert first != session_keys.secret_key(base) and len(first) == 32
    assert any(record.levelno == logging.WARNING and "span gunicorn's workers" in record.message
               for record in caplog.records)


def test_a_login_spans_the_front_ends_that_share_the_key(make_engine):
    """What one gunicorn worker (or front end) signed, another with the same key reads."""
    engine = make_engine(auth="on", message_secret="cluster secret")
    secret = TokenStore(engine.kv, engine.keys).create("dana", "read")[1]
    first, second = create_app(engine), create_app(engine)
    client = first.test_client()
    client.post("/ui/login", data={"csrf_token": csrf_of(client, "/ui/login"),
                                   "token": secret})
    cookie = client.get_cookie("mr_ui")
    other = second.test_client()
    other.set_cookie("mr_ui", cookie.value)
    assert "token dana (read)" in text(other.get("/ui"))
