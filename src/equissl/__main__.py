import sys

from equissl.app.cli import main

sys.exit(main())
