"""`python -m engine.cli …`: the same as the `flotilla` script (tests and benchmarks use it)."""

import sys

from engine.cli import main

sys.exit(main())
