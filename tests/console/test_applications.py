"""Applications and API tokens in the console, in a real browser: a write key and an API
token made, used against the HTTP API, rotated and revoked from the page; read-scope users
see no write control and are refused anyway; changes without the CSRF token are refused."""

from __future__ import annotations

import json

from tests.console.conftest import shoot, sign_in
from tests.helpers import client_as, make_event
from tests.processes import wait_until

HOSTILE = "<img src=x onerror=\"document.title='owned'\">"


def send(console, key: str, event_id: str) -> int:
    """The status of sending one event with `key` through the HTTP API."""
    with client_as(console.url, key) as client:
        return client.post("/events/", json=make_event(event_id=event_id)).status_code


def confirm_next_dialog(page, accept: bool = True) -> list[str]:
    """Answer the next confirmation the page asks; the questions asked are collected."""
    questions: list[str] = []

    def answer(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    return questions


def application(console, name: str) -> dict:
    (found,) = [a for a in console.api.get("/applications/").json()["results"] if a["name"] == name]
    return found


def csrf_token(page) -> str:
    return json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]


def test_an_application_made_in_the_console_sends_and_its_key_is_rotated_and_revoked(console, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    sign_in(page, console)
    page.goto(console.url + "/console/applications/")
    page.get_by_label("Name").fill("shop")
    page.get_by_role("button", name="Create application").click()
    first_key = page.get_by_role("textbox", name="Write key of shop").input_value()
    assert first_key.startswith("eye_wk_")
    page.get_by_role("button", name="Copy").click()
    assert page.get_by_role("button", name="Copied").is_visible()
    assert page.evaluate("navigator.clipboard.readText()") == first_key
    shoot(page, "applications-new-key")

    assert send(console, first_key, "shop-1") == 202
    stored = lambda: console.api.get("/events/", params={"application": "shop"}).json()["results"]  # noqa: E731
    assert [e["event_id"] for e in wait_until(stored, timeout=20)] == ["shop-1"]

    questions = confirm_next_dialog(page)
    page.get_by_role("button", name="Rotate the write key of shop").click()
    assert questions == ["Give shop a new write key? The current key is refused from now on."]
    second_key = page.get_by_role("textbox", name="Write key of shop").input_value()
    assert second_key.startswith("eye_wk_") and second_key != first_key
    # This process forgot its cached keys: the old one is refused at once.
    assert send(console, first_key, "shop-2") == 401
    assert send(console, second_key, "shop-3") == 202

    page.goto(console.url + "/console/applications/")
    assert (
        page.get_by_role("textbox", name="Write key of shop").count() == 0
    )  # shown once, only then
    confirm_next_dialog(page, accept=False)
    page.get_by_role("button", name="Revoke shop").click()
    assert send(console, second_key, "shop-4") == 202  # a dismissed question changes nothing

    confirm_next_dialog(page)
    page.get_by_role("button", name="Revoke shop").click()
    page.wait_for_url(console.url + "/console/applications/#app-*")
    row = page.locator(f"#app-{application(console, 'shop')['id']}")
    assert row.get_by_text("revoked").is_visible()
    assert send(console, second_key, "shop-5") == 401
    assert application(console, "shop")["active"] is False
    shoot(page, "applications")


def test_strict_mode_is_switched_from_the_list(console, page):
    sign_in(page, console)
    page.goto(console.url + "/console/applications/")
    page.get_by_role("button", name="Make web strict").click()
    row = page.locator(f"#app-{application(console, 'web')['id']}")
    assert row.get_by_role("cell", name="strict", exact=True).is_visible()
    assert application(console, "web")["strict"] is True
    page.get_by_role("button", name="Make web lenient").click()
    assert row.get_by_role("cell", name="lenient", exact=True).is_visible()
    assert application(console, "web")["strict"] is False


def test_a_refused_application_form_says_why_and_keeps_what_was_typed(console, page):
    sign_in(page, console)
    page.goto(console.url + "/console/applications/")
    page.get_by_label("Name").fill("web")
    page.get_by_role("checkbox", name="Strict").check()
    with page.expect_response(console.url + "/console/applications/") as answer:
        page.get_by_role("button", name="Create application").click()
    assert answer.value.status == 409
    assert page.get_by_role("alert").inner_text() == "An application named 'web' exists already."
    assert page.get_by_label("Name").input_value() == "web"
    assert page.get_by_role("checkbox", name="Strict").is_checked()

    page.get_by_label("Name").fill("x" * 101)
    with page.expect_response(console.url + "/console/applications/") as answer:
        page.get_by_role("button", name="Create application").click()
    assert answer.value.status == 400
    assert "at most 100 characters" in page.get_by_role("alert").inner_text()
    assert [a["name"] for a in console.api.get("/applications/").json()["results"]] == ["web"]


def test_a_token_made_in_the_console_works_and_is_revoked(console, page):
    sign_in(page, console)
    page.goto(console.url + "/console/tokens/")
    page.get_by_label("Name").fill("ci")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Create token").click()
    field = page.get_by_role("textbox", name="API token ci")
    token = field.input_value()
    assert token.startswith("eye_tk_")
    field.focus()  # without the clipboard, the whole token is selected for copying by hand
    assert field.evaluate("f => f.value.slice(f.selectionStart, f.selectionEnd)") == token
    shoot(page, "tokens-new-token")
    with client_as(console.url, token) as ci:
        assert ci.get("/events/").status_code == 200
        assert ci.get("/tokens/").status_code == 403  # the read scope it was given

        page.goto(console.url + "/console/tokens/")
        questions = confirm_next_dialog(page)
        page.get_by_role("button", name="Revoke the API token ci").click()
        assert questions and questions[0].startswith("Revoke the API token ci?")
        page.wait_for_url(console.url + "/console/tokens/#token-*")
        (made,) = [t for t in console.api.get("/tokens/").json()["results"] if t["name"] == "ci"]
        assert page.locator(f"#token-{made['id']}").get_by_text("revoked").is_visible()
        assert made["active"] is False
        assert ci.get("/events/").status_code == 401  # refused at once by this process
    shoot(page, "tokens")


def test_a_read_scope_user_sees_no_write_control_and_is_refused(console, page):
    viewer = console.api.post("/tokens/", json={"name": "viewer", "scope": "read"}).json()
    console.api.post("/applications/", json={"name": HOSTILE})
    sign_in(page, console, viewer["token"])
    for path, listed in (("applications", "web"), ("tokens", "viewer")):
        page.goto(f"{console.url}/console/{path}/")
        assert page.get_by_role("cell", name=listed, exact=True).is_visible()
        assert page.locator("main form, main button, main input").count() == 0
        shoot(page, f"{path}-read")
    page.goto(f"{console.url}/console/applications/")
    assert page.get_by_role("cell", name=HOSTILE).is_visible()  # shown as text, not markup
    assert page.title() != "owned" and page.locator("img[src=x]").count() == 0

    web = application(console, "web")
    csrf = csrf_token(page)
    forged = {
        "/console/applications/": {"name": "forged"},
        f"/console/applications/{web['id']}/rotate-key/": {},
        f"/console/applications/{web['id']}/revoke/": {},
        f"/console/applications/{web['id']}/strict/": {"strict": "true"},
        "/console/tokens/": {"name": "forged", "scope": "admin"},
        f"/console/tokens/{viewer['id']}/revoke/": {},
    }
    for path, fields in forged.items():
        refused = page.request.post(console.url + path, form={"csrf_token": csrf, **fields})
        assert refused.status == 403, path
        assert "admin scope" in refused.text()
    assert application(console, "web") == web
    assert send(console, console.write_key, "still-works") == 202
    tokens = console.api.get("/tokens/").json()["results"]
    assert [(t["name"], t["active"]) for t in tokens] == [("analyst", True), ("viewer", True)]


def test_an_admin_change_without_the_csrf_token_is_refused(console, page):
    sign_in(page, console)
    page.goto(console.url + "/console/applications/")
    web = application(console, "web")
    for path, fields in {
        "/console/applications/": {"name": "forged"},
        f"/console/applications/{web['id']}/revoke/": {},
        "/console/tokens/": {"name": "forged", "scope": "admin"},
    }.items():
        for csrf in ({}, {"csrf_token": "forged"}):
            refused = page.request.post(console.url + path, form={**fields, **csrf})
            assert refused.status == 403, (path, csrf)
            assert "CSRF" in refused.text()
    assert [a["name"] for a in console.api.get("/applications/").json()["results"]] == ["web"]
    assert application(console, "web")["active"] is True
    assert len(console.api.get("/tokens/").json()["results"]) == 1  # the analyst's only


def test_the_pages_are_readable_on_a_phone(console, narrow_page):
    sign_in(narrow_page, console)
    for path in ("applications", "tokens"):
        narrow_page.goto(f"{console.url}/console/{path}/")
        # Nothing wider than the window: a wide table scrolls inside its own box.
        assert narrow_page.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(narrow_page, f"{path}-narrow")
