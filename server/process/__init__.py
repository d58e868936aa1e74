"""The process a node runs in: the event loop (`loop.py`), logging (`logs.py`), Ctrl-C and
SIGTERM (`signals.py`), the embedded Postgres and Redis of the zero-setup default
(`embedded.py`) and the worker subprocesses `serve` starts (`local_workers.py`)."""
