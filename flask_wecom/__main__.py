"""``python -m flask_wecom``: the ``flask-wecom`` command line (see :mod:`flask_wecom.cli`)."""

import sys

from .cli import main

sys.exit(main())
