"""What runs on top of the clients: the worker and the command line."""
