"""The M6 app: `streamlit run app/streamlit_app.py -- --env local`.

Annotate (blind scoring of the evaluate pipeline's batch), Results (admins: means with 95%
intervals, agreement, exports) and Demos (the trained models on your own inputs)."""

import streamlit as st

import common

st.set_page_config(page_title="M6", layout="wide")
who = common.annotator()
pages = [st.Page("pages/annotate.py", title="Annotate", default=True)]
if who is not None and who.is_admin:
    pages.append(st.Page("pages/results.py", title="Results"))
pages.append(st.Page("pages/demos.py", title="Demos"))
page = st.navigation(pages)
with st.sidebar:
    if who is not None:
        st.text(f"Signed in as {who.name} ({who.role})")
        st.button("Sign out", on_click=common.sign_out)
page.run()
