"""`python -m lab ...` is the same as the `cachelab` command."""

from lab.cli import main

raise SystemExit(main())
