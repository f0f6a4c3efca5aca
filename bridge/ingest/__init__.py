"""The ingest: datagrams and lines in, series updated, every outcome counted (parser -> mapper -> store).

`lines` holds the hot loop and the full path of a line; `outputs` what one output of a mapping rule makes
of a sample; the store's refusals are counted by bridge/series/refusals.py, which a receiving worker's
main process shares. Transports call `Ingest.packets`; nothing here touches a socket.
"""

from bridge.ingest.lines import Ingest, SeriesStore, Shape, Update, how_of

__all__ = ["Ingest", "SeriesStore", "Shape", "Update", "how_of"]
