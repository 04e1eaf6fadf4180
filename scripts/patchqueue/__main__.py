import sys

from scripts.patchqueue.cli import main

sys.exit(main())
