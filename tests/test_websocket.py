"""The websocket transport as browsers meet it: a client that offers permessage-deflate
(every browser, and socket.io-client in Node) connects, and the server declines the
compression, which costs about 100 KB of memory per socket for frames of a hundred bytes
(server/realtime/websocket.py)."""

from __future__ import annotations

import json

import aiohttp

from tests.conftest import Server


async def test_a_client_offering_deflate_connects_without_compression(server: Server) -> None:
    key = await server.new_key()
    url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, compress=15) as ws:
        assert ws.compress == 0  # the handshake answered without permessage-deflate
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40" + json.dumps({"token": key}))
        reply = await ws.receive_str()
        assert reply.startswith("40") and '"sid"' in reply  # Socket.IO CONNECT accepted
        await ws.send_str(
            '421["execute",{"messages":[{"role":"user","content":"hi"}],'
            '"model":"simulated/ws","settings":{"max_tokens":3}}]'
        )
        events = []
        while not any(e.startswith('42["task_done"') for e in events):
            events.append(await ws.receive_str())
        assert any(e.startswith("431[") and '"ok":true' in e for e in events)
        assert any(e.startswith('42["task_chunk"') for e in events)
