"""The playground at `/`: its page and scripts (beside this file), their routes
(`routes.py`) and the pinned `socket.io-client` bundle they load (`assets.py`)."""
