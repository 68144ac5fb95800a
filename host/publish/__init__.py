"""`bench-host publish`: the results database as a static web site that works offline.

data.py reads the database (runs, and per run its points with `history`'s statistics),
changes.py finds steps (ruptures proposes, compare's test on the raw samples and the --fail-if
threshold decide), plots.py draws a series' history as Plotly JSON, pages.py and series_page.py
render the index, Changes, Compare and series pages (layout.py and assets.py are what they
share), run_pages.py gives each run its report (build_report) and two runs their comparison
(compare's write_page), workers.py builds those in parallel, writer.py writes the site
atomically (only folders stamped as ours are ever replaced), build.py runs it all
incrementally, serve.py serves it on 127.0.0.1."""
