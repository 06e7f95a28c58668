"""Generation demos for the app: the trained models loaded from their exported checkpoints and
called on one input at a time (no Streamlit here: app/views/demos.py is the page)."""
