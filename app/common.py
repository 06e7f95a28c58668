"""What every page of the app shares: settings (the Kedro `app` parameters of the environment
given after `--`), the annotation store, and who is signed in. Pages call `signed_in_or_stop()`
first: without a valid token nothing of the store is read."""

from __future__ import annotations

import logging
import sys
import uuid

import streamlit as st

from m6_pipeline.annotation.store import AnnotationStore, Annotator, StoreUnavailable
from m6_pipeline.annotation.tokens import AccessDenied
from m6_pipeline.app_settings import AppSettings, settings_from_argv


@st.cache_resource
def _settings(argv: tuple[str, ...]) -> AppSettings:
    return settings_from_argv(list(argv))


def settings() -> AppSettings:
    return _settings(tuple(sys.argv[1:]))


@st.cache_resource
def _store(path: str) -> AnnotationStore:
    return AnnotationStore(path)


def store() -> AnnotationStore:
    return _store(str(settings().store))


def annotator() -> Annotator | None:
    return st.session_state.get("annotator")


log = logging.getLogger("m6_pipeline.app")


def _session() -> str:
    """This browser session's id: failed sign-ins are counted per session too."""
    return st.session_state.setdefault("session_id", uuid.uuid4().hex)


def _sign_in() -> None:
    try:
        st.session_state["annotator"] = store().sign_in(st.session_state.pop("token_input", ""), _session())
        st.session_state.pop("sign_in_error", None)
    except AccessDenied as error:
        st.session_state["sign_in_error"] = str(error)
    except StoreUnavailable as error:
        log.error(error.detail)
        st.session_state["sign_in_error"] = str(error)


def show_unavailable(error: StoreUnavailable) -> None:
    """The store cannot be used: a message for the person in front of the app (the admin also
    sees what to do), the details in the server's log; the app stays up."""
    log.error(error.detail)
    st.error(str(error))
    who = annotator()
    if who is not None and who.is_admin:
        st.caption(error.detail)


def sign_out() -> None:
    for name in list(st.session_state):
        if name != "session_id":  # failed sign-ins stay counted for this browser session
            del st.session_state[name]


def signed_in_or_stop(admin: bool = False) -> Annotator:
    """The signed-in annotator, checked again against the store on every run of the page (a
    revoked or rotated token ends the session here); otherwise the sign-in form (or a refusal)
    and the page stops."""
    who = annotator()
    if who is not None:
        try:
            who = store().verify(who)
        except AccessDenied as error:
            sign_out()
            st.session_state["sign_in_error"] = str(error)
            who = None
    if who is None:
        st.subheader("Sign in")
        st.caption("Paste the personal token your admin gave you (`python -m m6_pipeline.annotation.admin create-annotator NAME`).")
        with st.form("sign_in"):
            st.text_input("Token", type="password", key="token_input")
            st.form_submit_button("Sign in", on_click=_sign_in)
        if error := st.session_state.get("sign_in_error"):
            st.error(error)
        st.stop()
    if admin and not who.is_admin:
        st.error("This page is for admins.")
        st.stop()
    return who
