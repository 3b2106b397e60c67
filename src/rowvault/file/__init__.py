"""The backup file format: `format` (the document's shape, the row path's writer, opening a
possibly compressed stream), `writer` (the fast path's line writer, gzip on its own thread),
`linelayout` and `jsonlayout` (reading rowvault's line layout, and any other JSON layout),
`reader` (scan and check a file end to end, then stream its sections), `descriptions`,
`recordtext`, `limits` (what reading may cost), `rejects` (the rejects file) and `sniff`
(what a file that is not a backup is)."""
