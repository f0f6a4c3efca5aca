"""Run the bridge on an event loop without add_reader, as Windows' default Proactor loop is.

    python tests/without_add_reader.py [bridge flags]

The same program, flags and output; only the loop differs, so the datagram listeners take the
portable asyncio-dgram path (bridge/receiving/portable.py). tests/integration/test_portable_listener.py runs it,
with the faults of tests/with_faults.py when STATSD_BRIDGE_FAULTS names them.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bridge.main
import tests.with_faults  # noqa: F401  (puts in the faults STATSD_BRIDGE_FAULTS names)
from bridge.daemon import run


class LoopWithoutAddReader(asyncio.SelectorEventLoop):
    def add_reader(self, *args, **kwargs):
        raise NotImplementedError("no readiness callbacks on this loop")


def main_without_add_reader(config, mapping, web=None, mapping_text=None) -> int:
    # asyncio.Runner(loop_factory=...) would do this, from Python 3.11 on
    loop = LoopWithoutAddReader()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(run(config, mapping, web, mapping_text))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


bridge.main.main = main_without_add_reader
if __name__ == "__main__":
    bridge.main.cli()
