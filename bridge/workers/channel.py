"""Messages between the main process and a worker: pickled tuples, each behind its length, over a Unix
stream socket pair that only the two of them hold."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

HEADER = 4


def encode(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(HEADER, "big") + body


def send(writer: asyncio.StreamWriter, message: object) -> None:
    writer.write(encode(message))


async def receive(reader: asyncio.StreamReader) -> Any:
    """The next message; asyncio.IncompleteReadError when the other side is gone."""
    size = int.from_bytes(await reader.readexactly(HEADER), "big")
    return decode(await reader.readexactly(size))


def decode(body: bytes) -> Any:
    return pickle.loads(body)
