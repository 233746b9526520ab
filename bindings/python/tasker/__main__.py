"""python3 -m tasker: the worker command (same as python3 -m tasker.worker)."""

import sys

from .worker import main

sys.exit(main())
