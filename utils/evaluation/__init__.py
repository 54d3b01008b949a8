"""Evaluation: the streaming loop, the resumable attack ensemble, its state, masking checks, detection."""
