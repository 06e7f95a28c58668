"""Poem generation (§4.5): classical Chinese poems under a format constraint, written by a
constrained search — at every step a state machine masks the tokens that would break the format,
so every finished poem is valid by construction, not filtered after sampling."""
