"""The embedded server's engine: tubes, jobs and connections over the protocol core, no I/O.

``transports/server.py`` puts a listener in front of it.
"""
