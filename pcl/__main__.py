"""Allow ``python -m pcl`` as an alias of the ``pcl`` console script."""

from pcl.cli import main

raise SystemExit(main())
