"""The M6 app: `streamlit run app/streamlit_app.py -- --env local`.

Annotate (blind scoring of the evaluate pipeline's batch), Results (admins: means with 95%
intervals, agreement, exports) and Demos (the trained models on your own inputs; signed-in
users only unless `app.demos.public` is set). The server listens on 127.0.0.1
(.streamlit/config.toml): docs/app.md puts a team behind a TLS proxy."""

import streamlit as st

import common
from m6_pipeline.annotation.store import StoreUnavailable

st.set_page_config(page_title="M6", layout="wide")
who = common.annotator()
pages = [st.Page("views/annotate.py", title="Annotate", default=True)]
if who is not None and who.is_admin:
    pages.append(st.Page("views/results.py", title="Results"))
pages.append(st.Page("views/demos.py", title="Demos"))
page = st.navigation(pages)
with st.sidebar:
    if who is not None:
        st.text(f"Signed in as {who.name} ({who.role})")
        st.button("Sign out", on_click=common.sign_out)
try:
    page.run()
except StoreUnavailable as error:  # locked, damaged or read-only: a message, not a traceback
    common.show_unavailable(error)
