"""`python -m keyrouter` is the `keyrouter` command."""

import sys

from keyrouter.cli import main

sys.exit(main())
