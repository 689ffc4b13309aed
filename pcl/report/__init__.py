"""Reporting: from per-image result rows to the paper's tables, an audit and a pass/fail check.

Why a separate layer: every number the harness shows is aggregated here from per-image rows
(``results/<tier>/<experiment>/<protocol>/<dataset>.csv``), never typed in, so a table cell can
always be traced back to the result file, its JSON sidecar and the code that produced it.  The
modules, in data-flow order (the names of data sets and tiers are ``pcl.names``):

- ``results``: the result-row schema, CSV I/O and per-set summaries.
- ``released_logs``: parser for the authors' released per-image logs; turns them into result rows
  of tier ``reported`` (entry point: ``ingest``).
- ``paper``: the transcribed paper tables as printed, and decimal rounding.
- ``labels``: display names (backbone -> ``EDSR-L``, (backbone, method) -> Table II row).
- ``cells``: which paper cells each catalog experiment feeds, read from the JSON that
  ``pcl catalog cells`` writes (this layer must not import ``pcl.train``).
- ``specs``: what each of Tables II-VII is (``TableSpec``, ``TABLES``).
- ``placement``: which row a result goes on -- the catalog's cells for the trained tiers, names
  for the others.
- ``lines``, ``tables``, ``render``: a table's lines with their result files, the generic builder
  (``build_table``), Markdown and LaTeX.
- ``audit``: log averages vs the printed Table II, gains and images improved, from the logs.
- ``figures``: the released-gains plot.
- ``reports``: the one orchestrator of ``pcl tables`` (``write_reports``: tables, audit, figure).
- ``check`` and its parts ``check_config`` (tolerances.yaml, expected_deviations.yaml),
  ``check_report`` (items, report), ``check_rules`` (rules paper, finite), ``check_released``
  (rules released_logs, released_models), ``check_perceptual`` (Table III) and
  ``check_provenance`` (every file lands in a table and has its sidecar); entry point
  ``check.check_files`` (``pcl check``).
- ``gains``, ``stats``, ``gains_report``: per-image gains of +PCL with their uncertainty.
"""
