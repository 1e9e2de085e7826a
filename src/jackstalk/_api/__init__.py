"""The client API without I/O: options, jobs, the operations and the methods built from them.

Builds on the protocol core; the transports build on it and add only the moving of bytes.
"""
