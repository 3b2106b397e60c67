"""The backup file format (the writer of the fast backup path so far; see STYLE.md's layout)."""
