import sys

from equissl.cli import main

sys.exit(main())
