"""The protocol core: commands, replies, framing and stats parsing, with no I/O.

Imports nothing above it and no socket, asyncio, threading or trio module; the client API,
the embedded engine and the transports all build on it.
"""
