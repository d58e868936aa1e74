"""The `promptrelay` command line: `main.py` parses the commands and runs a node
(`serve`, `gateway`, `worker`), `migrate`, `keys`, `users` and `provider-keys`; commands of
other packages (the load test's `bench`) register through the `promptrelay.commands` entry
point group, so the server never imports them."""
