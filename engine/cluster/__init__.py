"""Gateways and workers: the node, the job stream and leases, the sweeper."""
