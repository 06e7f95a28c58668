"""Results (admins only): per task and model the mean of each criterion with its 95% interval,
Krippendorff's alpha where items have several annotators, counts per annotator, flags, and the
answers as CSV and JSONL (the JSONL is what the evaluate pipeline reads)."""

import pandas as pd
import streamlit as st

import common
from m6_pipeline.annotation.results import export_csv, export_jsonl, results

admin = common.signed_in_or_stop(admin=True)
store = common.store()
st.title("Results")
summary = results(store, admin)
st.metric("Scored answers", summary["n_annotations"])
if not summary["results"]:
    st.info("No scored answers yet.")
for task, by_model in sorted(summary["results"].items()):
    st.subheader(task)
    rows = [{"model": model, "criterion": criterion, "mean": v["mean"], "95% low": v["low"], "95% high": v["high"],
             "n": v["n"]} for model, by_criterion in sorted(by_model.items()) for criterion, v in sorted(by_criterion.items())]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if task == "qa_turing":
        st.caption("fooled: share of judgements that took the model's answer for the human's (0.5 = indistinguishable)")
    alpha = summary["agreement"].get(task, {})
    st.dataframe(pd.DataFrame([{"criterion": c, "Krippendorff's alpha": a} for c, a in sorted(alpha.items())]),
                 hide_index=True)

st.subheader("Annotators")
st.dataframe(pd.DataFrame(store.annotator_table(admin)), hide_index=True)
st.caption(f"Skipped: {summary['skipped']}")
if summary["flags"]:
    st.subheader("Flags")
    st.dataframe(pd.DataFrame(summary["flags"]), hide_index=True)

st.download_button("Download CSV", export_csv(store, admin), file_name="annotations.csv", mime="text/csv")
st.download_button("Download JSONL", export_jsonl(store, admin), file_name="annotations.jsonl",
                   mime="application/x-ndjson")
