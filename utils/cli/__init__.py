"""Command-line plumbing of the entry scripts: absl flag definitions and one-line errors
(the only absl users in utils/)."""
