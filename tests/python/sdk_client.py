"""The official Python MCP SDK (PyPI `mcp` 2.3.0) against meshmux, for the end-to-end tests.

Usage: python sdk_client.py '<spec JSON>' where the spec is
  {"url": "http://127.0.0.1:PORT/mcp", "mode": "auto" | "legacy" | "2026-07-28",
   "env": "Alpha", "other_env": "Beta", "timeout": 20}

It connects in the given mode (`Client(url, mode=...)`), lists the tools, and calls every
`server-everything` tool it knows how to call on `env` (adding the gateway's `env` argument),
with elicitation, sampling and roots callbacks for the tools that ask the client something. Each
call is bounded by `timeout` seconds. It prints one JSON object on stdout:
  {"mode", "sdkVersion", "protocolVersion", "serverName", "tools": [names], "error": null | "...",
   "calls": [{"tool", "env", "verdict", "detail", "seconds", "isError", "text"}],
   "callbacks": {"elicitation": n, "sampling": n, "roots": n}, "progress": n}
where a verdict is
  "pass"     the result is what the backend answers directly (checked per tool),
  "refused"  a tool that asks the client something answered at once with an `isError` result
             saying the client cannot be asked across the gateway (allowed for 2026-07-28),
  "fail"     anything else (wrong content, an MCP error, a wrong result shape),
  "timeout"  no answer within `timeout` seconds,
  "skipped"  not callable with a plain `tools/call` (detail says why),
  "unknown"  a tool this script has no expectations for; called with `{}`, not judged.
It exits 0 whenever it printed the summary; a crash exits non-zero with a traceback on stderr.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import time
import traceback
from typing import Any, Callable

import anyio
import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

ROOT_URI = "file:///meshmux/e2e/root"
ROOT_NAME = "meshmux-e2e-root"
ELICIT_NAME = "Ada Lovelace (python)"
SAMPLED_TEXT = "sampled-by-the-python-client"

# get-roots-list's text when its roots/list (sent outside the call) got no roots.
ROOTS_ABSENT = "no roots are currently configured"

# A tool result that refuses a server-to-client request across the gateway (2026-07-28).
REFUSAL = re.compile(
    r"(elicit|sampl|roots|ask|input|server-to-client).*(gateway|meshmux|cannot|can't|not supported|unsupported)"
    r"|(gateway|meshmux|cannot|can't|not supported|unsupported).*(elicit|sampl|roots|ask|input|server-to-client)",
    re.IGNORECASE | re.DOTALL,
)


class Counts:
    def __init__(self) -> None:
        self.elicitation = 0
        self.sampling = 0
        self.roots = 0
        self.progress = 0


COUNTS = Counts()


async def on_elicit(_ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    COUNTS.elicitation += 1
    if getattr(params, "mode", None) == "url":
        return types.ElicitResult(action="accept")
    return types.ElicitResult(action="accept", content={"name": ELICIT_NAME, "check": True})


async def on_sample(_ctx: Any, _params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    COUNTS.sampling += 1
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=SAMPLED_TEXT),
        model="meshmux-e2e-model",
        stop_reason="endTurn",
    )


async def on_roots(_ctx: Any) -> types.ListRootsResult:
    COUNTS.roots += 1
    return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name=ROOT_NAME)])


async def on_progress(_progress: float, _total: float | None, _message: str | None) -> None:
    COUNTS.progress += 1


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content if getattr(c, "type", "") == "text")


def has(*needles: str) -> Callable[[types.CallToolResult], str | None]:
    def check(result: types.CallToolResult) -> str | None:
        text = text_of(result)
        missing = [n for n in needles if n not in text]
        return f"missing {missing!r} in {text[:300]!r}" if missing else None

    return check


def has_type(kind: str, *needles: str) -> Callable[[types.CallToolResult], str | None]:
    def check(result: types.CallToolResult) -> str | None:
        if not any(getattr(c, "type", "") == kind for c in result.content):
            return f"no {kind} content in {[getattr(c, 'type', '?') for c in result.content]}"
        return has(*needles)(result)

    return check


def structured_chicago(result: types.CallToolResult) -> str | None:
    sc = result.structured_content
    if not isinstance(sc, dict) or sc.get("temperature") != 36:
        return f"structuredContent is {sc!r}"
    return None


# tool -> (arguments without env, check, what it asks the client: None | "elicitation" | ...)
def expectations(mode: str, env: str) -> dict[str, tuple[dict[str, Any], Callable[..., str | None], str | None]]:
    tag = f"py-{mode}"
    return {
        "echo": ({"message": tag}, has(f"Echo: {tag}"), None),
        "get-annotated-message": (
            {"messageType": "success", "includeImage": True},
            has_type("image", "Operation completed successfully"),
            None,
        ),
        "get-env": ({}, has(f'"MESHMUX_TEST_ENV": "{env}"'), None),
        "get-resource-links": ({"count": 2}, has_type("resource_link", "2 resource links"), None),
        "get-resource-reference": (
            {"resourceType": "Text", "resourceId": 1},
            has_type("resource", "Resource 1"),
            None,
        ),
        "get-structured-content": ({"location": "Chicago"}, structured_chicago, None),
        "get-sum": ({"a": 2, "b": 40}, has("The sum of 2 and 40 is 42."), None),
        "get-tiny-image": ({}, has_type("image", "MCP logo"), None),
        "gzip-file-as-resource": (
            {"name": f"{tag}.txt.gz", "data": "data:text/plain;base64,aGVsbG8gbWVzaG11eA==", "outputType": "resource"},
            has_type("resource"),
            None,
        ),
        "toggle-simulated-logging": ({}, has("simulated"), None),
        "toggle-subscriber-updates": ({}, has("simulated resource update"), None),
        "trigger-long-running-operation": (
            {"duration": 1, "steps": 2},
            has("Duration: 1 seconds, Steps: 2"),
            None,
        ),
        "trigger-elicitation-request": ({}, has(f"Name: {ELICIT_NAME}"), "elicitation"),
        "trigger-url-elicitation": (
            {"url": "https://example.com/meshmux-e2e", "elicitationId": f"e2e-{tag}"},
            has("User completed the URL elicitation flow", f"e2e-{tag}"),
            "elicitation",
        ),
        "trigger-sampling-request": (
            {"prompt": f"hello from {tag}", "maxTokens": 20},
            has(SAMPLED_TEXT),
            "sampling",
        ),
        "trigger-sampling-request-async": ({"prompt": f"hello from {tag}"}, has(SAMPLED_TEXT), "sampling"),
        "trigger-elicitation-request-async": ({}, has(ELICIT_NAME), "elicitation"),
        "get-roots-list": ({}, has(ROOT_URI), "roots"),
    }


async def call_one(
    client: Client, tool: str, env: str, args: dict[str, Any], check: Any, asks: str | None, timeout: float
) -> dict[str, Any]:
    started = time.monotonic()
    entry: dict[str, Any] = {"tool": tool, "env": env, "isError": None, "text": None}
    try:
        with anyio.fail_after(timeout + 5):
            result = await client.call_tool(
                PREFIX + tool,
                {"env": env, **args} if ENV_ARG else args,
                read_timeout_seconds=timeout,
                progress_callback=on_progress if tool == "trigger-long-running-operation" else None,
            )
        text = text_of(result)
        entry["isError"] = result.is_error
        entry["text"] = text[:600]
        if check is None:
            entry["verdict"], entry["detail"] = "unknown", "no expectations for this tool"
        elif result.is_error:
            if asks is not None and REFUSAL.search(text):
                entry["verdict"], entry["detail"] = "refused", f"{asks} refused with a tool error"
            else:
                entry["verdict"], entry["detail"] = "fail", f"isError: {text[:300]!r}"
        elif asks == "roots" and ROOTS_ABSENT in text:
            # server-everything asks for roots outside the call (no related request), which no
            # gateway can route to one caller; answering that request at once is the best case.
            entry["verdict"], entry["detail"] = "refused", "the backend got no roots (its roots/list was answered)"
        else:
            problem = check(result)
            entry["verdict"], entry["detail"] = ("fail", problem) if problem else ("pass", None)
    except TimeoutError:
        entry["verdict"], entry["detail"] = "timeout", f"no answer within {timeout} s"
    except MCPError as e:
        # -32001: the SDK's own request timeout.
        verdict = "timeout" if e.code == -32001 or "timed out" in e.error.message else "fail"
        entry["verdict"], entry["detail"] = verdict, f"MCP error {e.code}: {e.error.message}"
    except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
        entry["verdict"], entry["detail"] = "fail", f"{type(e).__name__}: {e}"
    entry["seconds"] = round(time.monotonic() - started, 3)
    return entry


async def use(client: Client, out: dict[str, Any], env: str, other: str | None, timeout: float, mode: str) -> None:
    out["protocolVersion"] = client.protocol_version
    info = client.server_info
    out["serverName"] = info.name if info else None
    tools: list[types.Tool] = []
    cursor = None
    with anyio.fail_after(timeout + 5):
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
    out["tools"] = [t.name for t in tools]
    table = expectations(mode, env)
    # Behind a server prefix, only this server's tools, called by their served names.
    tools = [t.model_copy(update={"name": t.name[len(PREFIX):]}) for t in tools if t.name.startswith(PREFIX)]
    for tool in tools:
        execution = getattr(tool, "execution", None)
        if execution is not None and getattr(execution, "task_support", None) == "required":
            out["calls"].append(
                {
                    "tool": tool.name,
                    "env": env,
                    "verdict": "skipped",
                    "detail": "requires task-augmented execution (experimental tasks)",
                    "seconds": 0,
                    "isError": None,
                    "text": None,
                }
            )
            continue
        args, check, asks = table.get(tool.name, ({}, None, None))
        out["calls"].append(await call_one(client, tool.name, env, args, check, asks, timeout))
    if other:
        entry = await call_one(client, "get-env", other, {}, has(f'"MESHMUX_TEST_ENV": "{other}"'), None, timeout)
        entry["tool"] = "get-env@other"
        out["calls"].append(entry)


# A server's tool prefix (`everything__`) and whether its tools take `env` (a server with one
# backend takes none); set from the spec.
PREFIX = ""
ENV_ARG = True


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    global PREFIX, ENV_ARG
    PREFIX = spec.get("prefix", "")
    ENV_ARG = spec.get("env_arg", True)
    mode = spec.get("mode", "auto")
    env = spec["env"]
    other = spec.get("other_env")
    timeout = float(spec.get("timeout", 20))
    out: dict[str, Any] = {
        "mode": mode,
        "sdkVersion": importlib.metadata.version("mcp"),
        "protocolVersion": None,
        "serverName": None,
        "tools": [],
        "calls": [],
        "error": None,
    }
    client = Client(
        spec["url"],
        mode=mode,
        read_timeout_seconds=timeout,
        elicitation_callback=on_elicit,
        sampling_callback=on_sample,
        list_roots_callback=on_roots,
        client_info=types.Implementation(name="meshmux-e2e-python", version="1.0.0"),
    )
    # Connecting is bounded by the read timeout; the caller bounds the whole process.
    try:
        async with client:
            await use(client, out, env, other, timeout, mode)
    except BaseException as e:  # noqa: BLE001 - reported in the summary
        if out["error"] is None:
            out["error"] = f"{type(e).__name__}: {e}"
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(sys.argv[1])
    try:
        out = anyio.run(run, spec)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 1
    out["callbacks"] = {"elicitation": COUNTS.elicitation, "sampling": COUNTS.sampling, "roots": COUNTS.roots}
    out["progress"] = COUNTS.progress
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
