"""Receiving: UDP, unixgram and TCP listeners, and the relay. Bytes in, batches of datagrams (or TCP lines)
out, handed to one callable; nothing here parses a line or knows a metric."""
