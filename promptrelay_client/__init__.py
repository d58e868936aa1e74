"""promptrelay's Python client: `async with Client(url, token) as c:` then
`async for chunk in c.execute(messages=[...], model="...")`. See docs/clients.md."""

from promptrelay_client.client import Client
from promptrelay_client.credentials import TokenProvider
from promptrelay_client.errors import ClientClosed, PromptrelayError
from promptrelay_client.library import Library, each_item
from promptrelay_client.task import Anomaly, Chunk, Task, TaskDone, ToolCallStream

__all__ = [
    "Anomaly",
    "Chunk",
    "Client",
    "ClientClosed",
    "Library",
    "PromptrelayError",
    "Task",
    "TaskDone",
    "TokenProvider",
    "ToolCallStream",
    "each_item",
]
