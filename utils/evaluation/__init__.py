"""Evaluation: the streaming loops, the resumable attack ensemble and its members and
state, masking checks, detection."""
