"""The client protocol's payloads: requests, responses and paging."""
