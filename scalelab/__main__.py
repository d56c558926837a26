"""``python -m scalelab`` runs the CLI."""

import sys

from scalelab.cli.main import main

sys.exit(main())
