import sys

from scripts.gates.cli import main

sys.exit(main())
