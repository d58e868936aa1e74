"""The HTTP side of the gateway: the `/v1` routes (tasks, account, history, prompts, orgs,
provider keys, `/metrics`), the request helpers every route uses (`requests.py`), and the
guards in front of them: CORS (`cors.py`), rate limits and long URLs (`throttle.py`)."""
