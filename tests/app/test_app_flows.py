"""The app's flows through Streamlit's AppTest: sign-in, scoring, resume, undo, admin results,
and access refused without a token or the admin role."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP

MAIN = str(APP / "streamlit_app.py")


def signed_in(token: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    at.text_input(key="token_input").input(token)
    at.button[0].click().run()  # the form's submit button
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def score_current_item(at: AppTest) -> None:
    """Click a value for every criterion (the first offered), then Submit."""
    for _ in range(4):
        values = [b for b in at.button if (b.key or "").startswith("score-") and not b.disabled]
        if not values:
            break
        values[-1].click().run()
    button(at, "Submit").click().run()


def test_without_a_token_only_the_sign_in_form_shows(app_env):
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Sign in"] and not at.title
    at.text_input(key="token_input").input("m6.deadbeef.guess")
    at.button[0].click().run()
    assert "unknown or revoked token" in at.error[0].value and not at.title


def test_score_resume_and_undo(app_env):
    store, token = app_env["store"], app_env["tokens"]["li"]
    at = signed_in(token)
    assert not at.exception and at.title[0].value == "Annotate"
    first = store.next_item(store.sign_in(token))
    score_current_item(at)
    assert at.success[0].value == "Saved."
    answers = store.owner_answers()
    assert [(a["annotator"], a["item_id"]) for a in answers] == [("li", first.item_id)]
    assert set(answers[0]["scores"]) == set(first.criteria) and answers[0]["seconds"] >= 0
    second = store.next_item(store.sign_in(token))
    # a fresh session (the browser closed) resumes at the second item
    again = signed_in(token)
    assert any(f"Item {second.position} of your queue" in c.value for c in again.caption)
    button(again, "Undo last answer").click().run()
    assert any(f"Item {first.position} of your queue" in c.value for c in again.caption)
    assert store.owner_answers() == [] and store.progress(store.sign_in(token)) == (0, store.progress(store.sign_in(token))[1])


def test_skip_and_flag_with_a_comment(app_env):
    store, token = app_env["store"], app_env["tokens"]["wang"]
    at = signed_in(token)
    button(at, "Flag").click().run()
    assert "comment" in at.error[0].value and store.owner_answers() == []
    at.text_input(key="comment").input("the image does not load").run()
    button(at, "Flag").click().run()
    button(at, "Skip").click().run()
    statuses = [(a["status"], a["comment"]) for a in store.owner_answers()]
    assert statuses == [("flagged", "the image does not load"), ("skipped", None)]


def test_admin_reads_results_and_annotators_cannot(app_env):
    store, key = app_env["store"], app_env["key"]
    at = signed_in(app_env["tokens"]["li"])
    score_current_item(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/results.py")  # an annotator's navigation has no Results page
    direct = AppTest.from_file(str(APP / "views" / "results.py"), default_timeout=60)
    direct.session_state["annotator"] = at.session_state["annotator"]
    direct.run()  # and the page itself refuses them, if reached some other way
    assert "for admins" in direct.error[0].value and not [t for t in direct.title if t.value == "Results"]
    admin = signed_in(app_env["admin"])
    admin.switch_page("views/results.py").run()
    assert not admin.exception and admin.title[0].value == "Results"
    assert admin.metric[0].value == "1"
    task = key[store.owner_answers()[0]["item_id"]]["task"]
    assert task in [s.value for s in admin.subheader]
    table = admin.dataframe[0].value
    assert set(table.columns) >= {"model", "criterion", "mean", "95% low", "95% high", "n"}


def test_revoking_a_token_ends_the_open_session_at_its_next_action(app_env):
    store, token = app_env["store"], app_env["tokens"]["li"]
    at = signed_in(token)
    assert at.title[0].value == "Annotate"
    store.deactivate("li")
    values = [b for b in at.button if (b.key or "").startswith("score-")]
    values[-1].click().run()  # the next action: the page checks the session against the store
    assert store.owner_answers() == []
    assert [s.value for s in at.subheader] == ["Sign in"] and not at.title
    assert any("revoked" in e.value for e in at.error)
    admin = signed_in(app_env["admin"])
    admin.switch_page("views/results.py").run()
    assert admin.title[0].value == "Results"
    store.rotate_token("boss")
    admin.run()
    assert [s.value for s in admin.subheader] == ["Sign in"] and not [t for t in admin.title if t.value == "Results"]


def test_the_demos_need_a_sign_in_unless_made_public(app_env):
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    at.switch_page("views/demos.py").run()
    assert not at.exception and [s.value for s in at.subheader] == ["Sign in"]
    assert not [t for t in at.title if t.value == "Demos"]
    signed = signed_in(app_env["tokens"]["wang"])
    signed.switch_page("views/demos.py").run()
    assert not signed.exception and signed.title[0].value == "Demos"


def test_a_damaged_store_shows_a_message_not_a_traceback(app_env):
    at = signed_in(app_env["tokens"]["li"])
    app_env["store"].path.write_bytes(b"\x00 not a database any more \x00" * 4096)
    at.run()
    assert not at.exception
    assert any("annotation store is unavailable" in e.value for e in at.error)
