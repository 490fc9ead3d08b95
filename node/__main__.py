"""``python -m node`` is the ``rogatory`` command, for environments without the console script."""

from node.cli import main

raise SystemExit(main())
