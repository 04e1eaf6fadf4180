import sys

from scripts.queue.cli import main

sys.exit(main())
