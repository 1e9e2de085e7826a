"""The transports: each moves bytes for the sans-IO core, nothing more.

Importing this package imports none of them, so trio stays optional.
"""
