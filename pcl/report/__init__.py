"""Reporting: from per-image result rows to the paper's tables, an audit and a pass/fail check.

Why a separate layer: every number the harness shows is aggregated here from per-image rows
(``results/<tier>/<experiment>/<protocol>/<dataset>.csv``), never typed in, so a table cell can
always be traced back to the images and the run that produced it.  The modules, in data-flow order:

- ``pcl.report.results``: the result-row schema, CSV I/O, per-set summaries and the mapping from
  (backbone, method) to Table II row labels (one place for display names).
- ``pcl.report.released_logs``: parser for the authors' released per-image logs; turns them into
  result rows of tier ``reported`` (entry point: ``ingest``).
- ``pcl.report.audit``: log averages vs the printed Table II, gains and images improved, computed
  from the logs (entry point: ``write_audit``).
- ``pcl.report.cells``: which paper cells each catalog experiment feeds, read from the JSON that
  ``pcl catalog cells`` writes (this layer must not import ``pcl.train``).
- ``pcl.report.tables``: Tables II, IV, V, VI and VII through one generic builder, every line
  labelled by tier and protocol; trained tiers placed by the cells (entry point: ``write_reports``,
  which also writes the audit and the figures).
- ``pcl.report.check``: per-tier acceptance rules from ``config/tolerances.yaml`` with documented
  exceptions from ``config/expected_deviations.yaml``; the smoke tier must have every catalog cell,
  finite (entry point: ``check_files``).
- ``pcl.report.figures``: plots (called by ``write_reports``).
"""
