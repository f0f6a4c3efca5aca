"""Receiving on every core (--statsd.workers): worker processes that receive, parse, map and pre-aggregate,
and hand what they hold to the one store in the main process.

    pool.py      the main process's side: starts, supervises and stops the workers, asks for hand-overs
    process.py   a worker process: listeners, the ingest, the commands it takes
    handover.py  what a worker holds between hand-overs, and the records it hands over
    merge.py     those records applied to the store
    channel.py   the messages between the two
    cpus.py      the CPUs this process may use, for --statsd.workers auto
"""
