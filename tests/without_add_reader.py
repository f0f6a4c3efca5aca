"""Run the bridge on an event loop without add_reader, as Windows' default Proactor loop is.

    python tests/without_add_reader.py [bridge flags]

The same program, flags and output; only the loop differs, so the datagram listeners take the
portable asyncio-dgram path (bridge/receiving/portable.py). tests/integration/test_portable_listener.py runs it.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bridge.main
from bridge.daemon import run


class LoopWithoutAddReader(asyncio.SelectorEventLoop):
    def add_reader(self, *args, **kwargs):
        raise NotImplementedError("no readiness callbacks on this loop")


def main_without_add_reader(config, mapping, web=None) -> int:
    with asyncio.Runner(loop_factory=LoopWithoutAddReader) as runner:
        return runner.run(run(config, mapping, web))


bridge.main.main = main_without_add_reader
if __name__ == "__main__":
    bridge.main.cli()
