"""Every run in a database: an embedded SQLite file by default (results/edgebench.sqlite), or a
lab's shared PostgreSQL server (`--db postgresql://...`, the extra `edgebench[postgres]`).

schema.py declares the tables (runs, devices, models, rows, samples, predictions), connect.py
opens a database from what the user typed, store.py imports results folders idempotently,
read.py gives a stored run back as the report's ResultSet, history.py draws one model's series,
record.py is what deploy/run/report call after writing their files."""
