"""orjson for Socket.IO packets: what the server sends and receives means what it meant."""

from __future__ import annotations

import json

from socketio import packet

from server.jsonpack import FastClientPacket, FastPacket


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
    assert roundtrip(FastClientPacket, data) == data
