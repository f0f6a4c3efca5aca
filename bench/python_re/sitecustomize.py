"""For bench/run.py --regex-engine re only: the bridge's regex rules compiled by Python's re instead of RE2.

On PYTHONPATH, Python imports this at start-up; it swaps re2.compile for re.compile, so the same
mapping can be measured with both engines in one run. Never on the bridge's own path.
"""

import re

import re2

re2.compile = lambda pattern, options=None: re.compile(pattern)
