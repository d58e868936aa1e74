"""The client contract as data: every Socket.IO event and HTTP route mapped onto its models
(`contract.py`, served at `GET /v1/protocol.json`) and the TypeScript definitions generated
from it (`typescript.py`)."""
