"""Annotate: the signed-in annotator's queue, one blind item at a time, scored with the keyboard.

Resume is free: the queue's next item is the first without a live answer in the store. Model
output is shown with st.text (plain text: markup in it is displayed, never rendered)."""

import time

import streamlit as st

import common
from m6_pipeline.annotation.guidelines import CRITERIA_HELP, KEYS, KIND_HELP, SCALE_0_5
from m6_pipeline.annotation.store import AlreadyAnswered
from m6_pipeline.annotation.tokens import AccessDenied

who = common.signed_in_or_stop()
store = common.store()
state = st.session_state


def values(allowed: list) -> list:
    return allowed if isinstance(allowed[0], str) else list(range(allowed[0], allowed[1] + 1))


def set_score(item_id: str, criteria: dict, value) -> None:
    """A key or click scores the criterion highlighted *now*. A button drawn by an earlier run
    (a key pressed faster than the page redraws) can still fire: it never rewrites a score
    already given, nor scores another item."""
    if state.get("shown_item") != item_id:
        return
    current = next((c for c in criteria if c not in state.scores), None)
    if current is not None and value in values(criteria[current]):
        state.scores[current] = value


def clear_score(criterion: str) -> None:
    state.scores.pop(criterion, None)


def answer(item_id: str, status: str) -> None:
    comment = state.get("comment", "")
    if status == "flagged" and not comment.strip():
        state.notice = ("error", "Write what is wrong with the item in the comment box, then flag it.")
        return
    try:
        store.submit(who, item_id, dict(state.scores) if status == "scored" else {},
                     time.monotonic() - state.shown_at, status, comment if status == "flagged" else None)
        state.notice = ("success", {"scored": "Saved.", "skipped": "Skipped.", "flagged": "Flagged."}[status])
    except AlreadyAnswered as error:
        state.notice = ("warning", str(error))
    except (ValueError, AccessDenied) as error:  # revoked: the page's next run signs out and says so
        state.notice = ("error", str(error))
        return
    state.pop("shown_item", None)
    state.comment = ""


def undo() -> None:
    try:
        item_id = store.undo_last(who)
    except AccessDenied as error:
        state.notice = ("error", str(error))
        return
    state.notice = ("info", "Your last answer is withdrawn: answer that item again.") if item_id else (
        "info", "Nothing to undo.")
    state.pop("shown_item", None)


done, total = store.progress(who)
st.title("Annotate")
if total == 0:
    st.info("No items are assigned to you yet: the admin loads a batch with "
            "`python -m m6_pipeline.annotation.admin load-batch`.")
    st.stop()
st.progress(done / total, text=f"{done} of {total} answered")
if notice := state.pop("notice", None):
    getattr(st, notice[0])(notice[1])

item = store.next_item(who)
if item is None:
    st.success("All your items are answered. Thank you!")
    st.button("Undo last answer", on_click=undo, shortcut="U")
    st.stop()
if state.get("shown_item") != item.item_id:  # a new item: its clock starts now
    state.shown_item, state.shown_at, state.scores = item.item_id, time.monotonic(), {}

with st.expander("Guidelines"):
    st.markdown(KEYS)
    st.markdown(f"Scale of 0-5 scores: {SCALE_0_5}.")
    for criterion in item.criteria:
        st.markdown(f"- **{criterion}**: {CRITERIA_HELP[criterion]}")

st.caption(f"Item {item.position} of your queue · {KIND_HELP[item.kind]}")
left, right = st.columns([2, 3])
with left:
    if item.image_key:
        st.image(store.image(who, item.image_key), width=256)
    if item.kind == "t2i":
        st.image(store.image(who, item.output), caption="generated", width=256)
with right:
    if item.prompt:
        st.markdown("**Prompt**")
        st.text(item.prompt)
    if item.kind == "qa_turing":
        for option in ("A", "B"):
            st.markdown(f"**Answer {option}**")
            st.text(item.output[option])
    elif item.kind != "t2i":
        st.markdown("**Output**")
        st.text(item.output)

# The same elements in the same places on every run (only their content changes), so a redraw
# never shows a stale copy of a button beside the new one.
current = next((c for c in item.criteria if c not in state.scores), None)
for criterion in item.criteria:
    label, value_col, edit_col = st.columns([4, 1, 1])
    label.markdown(f"{'→ ' if criterion == current else ''}**{criterion}**: {CRITERIA_HELP[criterion]}")
    value_col.markdown(f"**{state.scores.get(criterion, '–')}**")
    edit_col.button("change", key=f"change-{criterion}", on_click=clear_score, args=(criterion,),
                    disabled=criterion not in state.scores)
options = values(item.criteria[current or list(item.criteria)[-1]])
st.markdown(f"Score **{current}** (keys {', '.join(map(str, options))}):" if current else
            "Every criterion is scored: **Enter** submits.")
for column, value in zip(st.columns(len(options)), options):
    column.button(str(value), key=f"score-{value}", shortcut=str(value), disabled=current is None,
                  on_click=set_score, args=(item.item_id, item.criteria, value), width="stretch")

st.text_input("Comment (needed to flag an item)", key="comment")
submit, skip, flag, undo_col = st.columns(4)
submit.button("Submit", type="primary", shortcut="Enter", disabled=current is not None,
              on_click=answer, args=(item.item_id, "scored"))
skip.button("Skip", shortcut="S", on_click=answer, args=(item.item_id, "skipped"))
flag.button("Flag", shortcut="F", on_click=answer, args=(item.item_id, "flagged"))
undo_col.button("Undo last answer", shortcut="U", on_click=undo, disabled=done == 0)
