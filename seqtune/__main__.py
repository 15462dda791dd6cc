"""`python -m seqtune` is the `seqtune` command."""

import sys

from .cli import main

sys.exit(main())
