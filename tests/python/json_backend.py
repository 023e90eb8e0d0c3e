"""A stateful MCP backend on the official Python SDK (PyPI `mcp`) that answers every request as
plain JSON (`json_response=True`), for meshmux's isolation tests: server-everything only
answers SSE. Usage: python json_backend.py PORT (serves http://127.0.0.1:PORT/mcp).

Its one tool, `slow_echo(message, delay_ms)`, waits `delay_ms` and answers `Echo: <message>`.
"""

from __future__ import annotations

import sys

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("meshmux-e2e-json-backend")


@server.tool()
async def slow_echo(message: str, delay_ms: int = 0) -> str:
    """Waits delay_ms milliseconds, then echoes the message."""
    await anyio.sleep(delay_ms / 1000)
    return f"Echo: {message}"


if __name__ == "__main__":
    server.run(
        transport="streamable-http",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        json_response=True,
        stateless_http=False,
    )
