"""`python -m bridge.workers --worker 1/2 --channel FD`: a receiving worker, as the main process starts it."""

import sys

from bridge.workers.process import main

sys.exit(main())
