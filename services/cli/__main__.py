"""`python -m services.cli`: the `kansrijk` command (how `kansrijk up` starts its children)."""

import os

from services.cli import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
main()
