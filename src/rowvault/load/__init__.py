"""The write pass. `columnar` moves a table's records from the file to the database as
columns (DuckDB reads the lines, the engine's bulk path writes them); a batch it cannot
take exactly goes to the row path (`rowvault.loader`), which names every refused record."""
