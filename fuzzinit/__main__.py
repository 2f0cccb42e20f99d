import sys

from fuzzinit.cli import main

sys.exit(main())
