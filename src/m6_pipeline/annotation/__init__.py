"""Human annotation of the evaluation batches: an SQLite store (WAL, transactional writes)
of annotators with hashed personal tokens, blind per-annotator queues, answers and their
undo, and the admin's results. The Streamlit pages (app/) are a thin layer over this."""
