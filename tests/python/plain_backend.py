"""A plain MCP backend on Python's standard library, as many small servers are written.

Stateless Streamable HTTP with JSON answers only, on `http.server` defaults: HTTP/1.0 (one
request per connection, closed after the answer) and 501 for every method it does not define
(HEAD, GET, DELETE). It answers `initialize`, `tools/list` and `tools/call`.

    python3 plain_backend.py --env Prod --port 8123
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, HTTPServer

VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]

TOOLS = [
    {
        "name": "add",
        "description": "Adds two integers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
    {
        "name": "shout",
        "description": "Repeats a message in capitals.",
        "inputSchema": {
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
    },
]


def make_handler(env):
    class Handler(BaseHTTPRequestHandler):
        # http.server's default, spelled out: this is the point of this backend.
        protocol_version = "HTTP/1.0"

        def do_POST(self):
            if self.path.split("?")[0] != "/mcp":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                msg = json.loads(self.rfile.read(length))
            except ValueError:
                self.answer(400, {"jsonrpc": "2.0", "id": None,
                                  "error": {"code": -32700, "message": "Parse error"}})
                return
            if "id" not in msg:
                # A notification (or a client's response): accepted, no body.
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            rid = msg["id"]
            method = msg.get("method")
            params = msg.get("params") or {}
            if method == "initialize":
                asked = params.get("protocolVersion")
                result = {
                    "protocolVersion": asked if asked in VERSIONS else VERSIONS[0],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "plain-python", "version": "1.0"},
                }
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": TOOLS}
            elif method == "tools/call":
                result = self.call(params.get("name"), params.get("arguments") or {})
                if result is None:
                    self.answer(200, {"jsonrpc": "2.0", "id": rid, "error": {
                        "code": -32602, "message": "Unknown tool: %s" % params.get("name")}})
                    return
            else:
                self.answer(200, {"jsonrpc": "2.0", "id": rid, "error": {
                    "code": -32601, "message": "Method not found: %s" % method}})
                return
            self.answer(200, {"jsonrpc": "2.0", "id": rid, "result": result})

        def call(self, name, args):
            if name == "add":
                text = "[%s] %d" % (env, int(args.get("a", 0)) + int(args.get("b", 0)))
            elif name == "shout":
                text = "[%s] %s" % (env, str(args.get("message", "")).upper())
            else:
                return None
            return {"content": [{"type": "text", "text": text}], "isError": False}

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = HTTPServer(("127.0.0.1", args.port), make_handler(args.env))
    print("plain backend %s listening on 127.0.0.1:%d" % (args.env, args.port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
