"""The Socket.IO side of the gateway: events (`sockets.py`), connection caps and
revocation (`sessions.py`), Engine.IO sessions before their CONNECT (`handshakes.py`), the
room tables (`rooms.py`), the websocket transport (`websocket.py`), packet encoding
(`jsonpack.py`) and the `runs_changed` feed (`runs_feed.py`)."""
