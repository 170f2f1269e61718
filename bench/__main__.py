"""`python -m bench`: see bench/__init__.py."""

import sys

from . import main

sys.exit(main())
