"""The python-socketio / python-engineio internals our subclasses override or use, in the
installed releases.

server/realtime/handshakes.py (GuardedServer), rooms.py (IndexedManager), websocket.py
(PlainWebSocket) and polling.py (WholeBody) override private methods and read private
attributes. pyproject.toml caps
both packages before their next minor; when a new release is allowed, this test says which
method or attribute changed shape, before any socket test fails in a puzzling way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import engineio
import pytest
import socketio
from engineio.async_drivers import aiohttp as eio_aiohttp

# (class, method) -> the parameters our override was written against (without `self`),
# with their defaults; a `**name` entry is a catch-all.
SHAPES: dict[tuple[type[Any], str], list[str]] = {
    (socketio.AsyncServer, "_handle_eio_connect"): ["eio_sid", "environ"],
    (socketio.AsyncServer, "_handle_eio_disconnect"): ["eio_sid", "reason"],
    (socketio.AsyncServer, "_handle_connect"): ["eio_sid", "namespace", "data"],
    (socketio.AsyncServer, "_handle_eio_message"): ["eio_sid", "data"],
    (socketio.AsyncServer, "_send_packet"): ["eio_sid", "pkt"],
    (socketio.AsyncManager, "basic_enter_room"): ["sid", "namespace", "room", "eio_sid=None"],
    (socketio.AsyncManager, "basic_leave_room"): ["sid", "namespace", "room"],
    (socketio.AsyncManager, "get_rooms"): ["sid", "namespace"],
    (socketio.AsyncManager, "basic_disconnect"): ["sid", "namespace", "**kwargs"],
    (socketio.AsyncManager, "sid_from_eio_sid"): ["eio_sid", "namespace"],
    (engineio.async_socket.AsyncSocket, "close"): ["wait=True", "abort=False", "reason=None"],
    (eio_aiohttp.WebSocket, "__init__"): ["handler", "server"],
    (eio_aiohttp.WebSocket, "__call__"): ["environ"],
}


def shape(function: Callable[..., Any]) -> list[str]:
    out = []
    for name, param in inspect.signature(function).parameters.items():
        if name == "self":
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            out.append(f"**{name}")
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            out.append(f"*{name}")
        elif param.default is inspect.Parameter.empty:
            out.append(name)
        else:
            out.append(f"{name}={param.default!r}")
    return out


@pytest.mark.parametrize(
    ("owner", "method"), list(SHAPES), ids=[f"{c.__name__}.{m}" for c, m in SHAPES]
)
def test_overridden_method_keeps_its_shape(owner: type[Any], method: str) -> None:
    where = f"{owner.__module__}.{owner.__qualname__}.{method}"
    function = getattr(owner, method, None)
    assert function is not None, (
        f"{where} is gone from the installed release: server/realtime overrides or calls it"
    )
    expected = SHAPES[(owner, method)]
    assert shape(function) == expected, (
        f"{where} changed shape: ({', '.join(shape(function))}) instead of "
        f"({', '.join(expected)}); update server/realtime's override and this test"
    )


def test_private_attributes_our_subclasses_use_exist() -> None:
    """Attributes read by GuardedServer, IndexedManager and use_plain_websockets."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    manager = socketio.AsyncManager()
    used: dict[str, tuple[object, str]] = {
        "AsyncServer._binary_packet": (sio, "_binary_packet"),
        "AsyncServer.packet_class": (sio, "packet_class"),
        "AsyncServer.manager": (sio, "manager"),
        "AsyncServer.eio": (sio, "eio"),
        "engineio AsyncServer.sockets": (sio.eio, "sockets"),
        "engineio AsyncServer._async": (sio.eio, "_async"),
        "engineio AsyncServer.reason": (sio.eio, "reason"),
        "engineio AsyncServer.ping_interval": (sio.eio, "ping_interval"),
        "engineio AsyncServer.ping_timeout": (sio.eio, "ping_timeout"),
        "AsyncManager.callbacks": (manager, "callbacks"),
        "AsyncManager.pending_connect": (manager, "pending_connect"),
        "AsyncManager.pending_disconnect": (manager, "pending_disconnect"),
    }
    gone = [label for label, (obj, name) in used.items() if not hasattr(obj, name)]
    assert not gone, f"gone from the installed python-socketio/engineio: {', '.join(gone)}"
    assert "websocket" in sio.eio._async, "engineio AsyncServer._async has no 'websocket' driver"
    # use_whole_bodies wraps the aiohttp driver's request translation (a sync function of the
    # request) and replaces the `wsgi.input` that AsyncSocket.handle_post_request reads
    translate = sio.eio._async.get("translate_request")
    assert translate is not None and not inspect.iscoroutinefunction(translate)
    assert shape(translate) == ["request"], "engineio's translate_request changed shape"
    post = inspect.getsource(engineio.async_socket.AsyncSocket.handle_post_request)
    assert "environ['wsgi.input'].read(length)" in post, "engineio reads polling bodies anew"
    assert hasattr(sio.eio.reason, "SERVER_DISCONNECT"), "engineio reason.SERVER_DISCONNECT gone"
    assert socketio.packet.ACK == 3, "socketio.packet.ACK changed"
