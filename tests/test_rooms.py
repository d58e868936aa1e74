"""The indexed room manager (server/realtime/rooms.py) keeps exactly the rooms python-socketio's own
manager keeps, through any mix of joins, leaves, closed rooms and disconnects."""

from __future__ import annotations

import random
from typing import Any

import socketio

from server.realtime.rooms import IndexedManager

NAMESPACES = ["/", "/other"]


def state(manager: Any) -> dict[Any, dict[Any, dict[str, str]]]:
    return {
        ns: {room: dict(members) for room, members in rooms.items()}
        for ns, rooms in manager.rooms.items()
    }


def connect(managers: list[Any], sid: str, ns: str) -> None:
    for manager in managers:
        manager.basic_enter_room(sid, ns, None, eio_sid=f"eio-{sid}")
        manager.basic_enter_room(sid, ns, sid, eio_sid=f"eio-{sid}")


def test_same_rooms_as_the_stock_manager_through_random_operations() -> None:
    rng = random.Random(7)
    stock, indexed = socketio.AsyncManager(), IndexedManager()
    managers = [stock, indexed]
    connected: set[tuple[str, str]] = set()
    for step in range(5000):
        op = rng.random()
        ns = rng.choice(NAMESPACES)
        if op < 0.25 or not connected:
            sid = f"s{step}"
            connect(managers, sid, ns)
            connected.add((ns, sid))
            continue
        ns, sid = rng.choice(sorted(connected))
        room = f"user:{rng.randrange(20)}"
        if op < 0.55:
            for manager in managers:
                manager.basic_enter_room(sid, ns, room)
        elif op < 0.75:
            for manager in managers:
                manager.basic_leave_room(sid, ns, room)
        elif op < 0.8:
            for manager in managers:
                manager.basic_close_room(room, ns)
        else:
            for manager in managers:
                manager.basic_disconnect(sid, ns)
            connected.discard((ns, sid))
        assert state(indexed) == state(stock), step
    for ns, sid in connected:
        assert sorted(indexed.get_rooms(sid, ns)) == sorted(stock.get_rooms(sid, ns))


def test_a_disconnect_leaves_every_room_and_forgets_the_socket() -> None:
    manager = IndexedManager()
    for i in range(1000):
        connect([manager], f"s{i}", "/")
        manager.basic_enter_room(f"s{i}", "/", f"user:{i % 10}")
    for i in range(1000):
        manager.basic_disconnect(f"s{i}", "/")
    assert manager.rooms == {} and manager._rooms_of == {}
