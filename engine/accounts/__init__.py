"""Accounts: profiles, API keys, quotas, connections, provider keys and their encryption."""
