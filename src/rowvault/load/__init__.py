"""The write pass of a restore: `plan` (the file fitted to the target, immutable during a
run), `matching` and `ordering` (names, parents first, the foreign keys held back), then
per table `columnar` (records moved as columns: DuckDB reads the lines, the engine's bulk
path writes them) or, for what that cannot take exactly, `rows` (the row path: batches,
bisection, every refused record named), with `batching`, `state` (what a run remembers
across batches) and `pending` (the DDL owed after the data)."""
