"""``python -m databuild.operator``: run the operator (see ``--help``)."""

import sys

from databuild.operator.main import main

sys.exit(main())
