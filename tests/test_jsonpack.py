"""orjson for Socket.IO packets, the server's and promptrelay_client's: what they send and
receive means what it meant."""

from __future__ import annotations

import json

from socketio import packet

from promptrelay_client.packets import ClientPacket
from server.realtime.jsonpack import FastPacket


def roundtrip(cls: type[packet.Packet], data: object) -> object:
    return cls(encoded_packet=cls(packet.EVENT, data=data).encode()).data


def test_server_packets_encode_like_the_default() -> None:
    data = ["task_chunk", {"task_id": "t", "seq": 3, "text": 'héllo \u2028 "q" \U0001f600'}]
    encoded = FastPacket(packet.EVENT, data=data).encode()
    assert packet.Packet(encoded_packet=encoded).data == data
    assert roundtrip(FastPacket, ["e", {1: "int key", "n": 10**30}]) == [
        "e",
        {"1": "int key", "n": 10**30},
    ]


def test_server_decodes_what_clients_send_exactly_as_before() -> None:
    for text in ('2["execute",{"n":' + "9" * 40 + "}]", '2["execute",{"t":NaN}]'):
        ours = FastPacket(encoded_packet=text).data
        assert json.dumps(ours) == json.dumps(packet.Packet(encoded_packet=text).data)
    assert FastPacket(encoded_packet='2["e",{"n":' + "9" * 40 + "}]").data == [
        "e",
        {"n": int("9" * 40)},
    ]


def test_client_packets_read_server_events() -> None:
    data = ["task_done", {"text": "a b", "usage": {"output_tokens": 2}, "cost_usd": "0"}]
    assert roundtrip(ClientPacket, data) == data
    assert roundtrip(FastPacket, data) == data  # what the server writes, the client reads
    # orjson refuses NaN: read as python-socketio's default reads it
    assert ClientPacket(encoded_packet='2["e",{"t":NaN,"n":1}]').data[1]["n"] == 1


def test_client_requests_encode_like_the_default() -> None:
    """NaN stays NaN (which the server refuses), where orjson would have sent null."""
    data = ["execute", {"settings": {"temperature": float("nan")}, "k": {1: "x"}}]
    assert ClientPacket(packet.EVENT, data=data).encode() == (
        packet.Packet(packet.EVENT, data=data).encode()
    )
