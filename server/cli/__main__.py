"""`python -m server.cli`: the `promptrelay` command."""

import sys

from server.cli.main import main

sys.exit(main())
