"""The exchange's MCP endpoint through the official MCP Python SDK (`mcp` 2.x), against the
live binary (scripts/test-mcp.sh runs it):

    mcp_test.py agent BASE STATE   tools, mess_request/mess_wait/mess_answer with a human on
                                   plain REST, the same flow as a Task, bad arguments, auth;
                                   ends with a task the human completes after the client left
    mcp_test.py resume BASE STATE  after a server restart: a new client resumes that task by
                                   its id and reads the answer (text and photo)

Prints one line per check and `N passed, M failed`; exits non-zero on a failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any, Literal

import httpx2
from mcp import Client, MCPError
from mcp.client import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent
from mcp_types import Request, RequestParams, Result
from pydantic import ConfigDict

PASSED = 0
FAILED = 0
TASKS = "io.modelcontextprotocol/tasks"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name} {detail}")


def rest(base, method, path, key=None, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


# The Tasks extension's requests (SEP-2663): mcp 2.3 ships no models for them.
class TaskIdParams(RequestParams):
    task_id: str


class UpdateTaskParams(RequestParams):
    task_id: str
    input_responses: dict[str, Any]


class TasksGet(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param = "taskId"


class TasksUpdate(Request[UpdateTaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateTaskParams
    name_param = "taskId"


class TasksCancel(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param = "taskId"


class CreateTaskResult(Result):
    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None


class DetailedTask(Result):
    model_config = ConfigDict(extra="allow")
    task_id: str
    status: str
    status_message: str | None = None
    input_requests: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


class AckResult(Result):
    model_config = ConfigDict(extra="allow")


async def _resolve(created: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
    raise RuntimeError("this suite drives tasks by hand")


class TasksExtension(ClientExtension):
    identifier = TASKS

    def claims(self):
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=_resolve)]


def client(base, key, tasks=False, **kw):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"},
                              timeout=httpx2.Timeout(30, read=120))
    url = f"{base}/api/v1/exchanges/home/mcp"
    ext = [TasksExtension()] if tasks else []
    return Client(streamable_http_client(url, http_client=http), extensions=ext, **kw)


async def task_get(session, tid):
    return await session.send_request(TasksGet(params=TaskIdParams(task_id=tid)), DetailedTask)


def texts(r):
    return " ".join(c.text for c in r.content if isinstance(c, TextContent))


def images(r):
    return [c for c in r.content if isinstance(c, ImageContent)]


def human(base, human_key, ref, body):
    return rest(base, "PATCH", f"/api/v1/exchanges/home/requests/{ref}", human_key, body)


def photo_answer():
    return {"status": "completed", "mess": [{"response": {"content": [
        "The door is closed.", {"type": "image", "image": f"data:image/png;base64,{PNG}"}]}}]}


async def agent(base, state_file):
    s, a = rest(base, "POST", "/api/v1/exchanges/home/register",
                body={"executor_id": "mcp-agent", "display_name": "Agent"})
    s2, h = rest(base, "POST", "/api/v1/exchanges/home/register",
                 body={"executor_id": "mcp-human", "display_name": "Human",
                       "capabilities": ["home:door"]})
    s3, o = rest(base, "POST", "/api/v1/exchanges/office/register",
                 body={"executor_id": "other", "display_name": "Other"})
    check("register an agent, a human and another exchange's member", (s, s2, s3) == (201,) * 3)
    akey, hkey = a["api_key"], h["api_key"]

    # The bare endpoint: a key of another exchange is refused as everywhere else.
    async with httpx2.AsyncClient() as raw:
        url = f"{base}/api/v1/exchanges/home/mcp"
        r = await raw.post(url, json={}, headers={"Authorization": f"Bearer {o['api_key']}"})
        check("mcp: another exchange's key is 403 JSON", r.status_code == 403
              and r.json().get("code") == "forbidden", f"{r.status_code} {r.text[:200]}")
        r = await raw.post(url, json={})
        check("mcp: no key is 401 JSON", r.status_code == 401 and "error" in r.json(),
              f"{r.status_code}")

    async with client(base, akey) as c:
        check("the SDK negotiates MCP 2026-07-28", c.protocol_version == "2026-07-28",
              c.protocol_version)
        names = [t.name for t in (await c.list_tools()).tools]
        want = ["mess_request", "mess_status", "mess_wait", "mess_answer", "mess_cancel",
                "mess_fetch", "mess_capabilities", "mess"]
        check("tools/list names the MESS tools", names == want, f"{names}")

        # Bad arguments: error results that say what is wrong.
        for args, why in [({}, "intent"), ({"intent": "x", "priority": "asap"}, "priority")]:
            r = await c.call_tool("mess_request", args)
            check(f"mess_request without a valid {why}: an error result",
                  r.is_error and texts(r), texts(r))
        r = await c.call_tool("mess_wait", {"ref": "2026-01-01-NOPE", "timeout_seconds": 61})
        check("mess_wait with timeout 61: an error result", r.is_error, texts(r))
        r = await c.call_tool("mess_wait", {"ref": "not a ref!"})
        check("mess_wait with a malformed ref: an error result", r.is_error, texts(r))
        try:
            await c.call_tool("mess_fly", {})
            check("an unknown tool: a protocol error", False)
        except MCPError as e:
            check("an unknown tool: a protocol error", e.error.code == -32602, f"{e.error}")

        # The wait loop: request, a human answers a question and completes with a photo.
        r = await c.call_tool("mess_request", {"intent": "Is the garage door closed?",
                                               "requires": ["home:door"],
                                               "response_hint": ["photo"]})
        ref = (r.structured_content or {}).get("ref")
        check("mess_request answers a ref and pending", not r.is_error and ref
              and r.structured_content.get("status") == "pending", texts(r))
        s, _ = human(base, hkey, ref, {"status": "claimed"})
        s2, _ = human(base, hkey, ref, {"status": "needs_input",
                                       "message": "Which garage, the left or the right one?"})
        r = await c.call_tool("mess_wait", {"ref": ref, "since": 1, "timeout_seconds": 10})
        check("mess_wait sees the question (needs_input)", s == s2 == 200 and not r.is_error
              and r.structured_content.get("status") == "needs_input"
              and "left or the right" in texts(r), texts(r)[:300])
        version = r.structured_content.get("version")
        r = await c.call_tool("mess_answer", {"ref": ref, "text": "The left one."})
        check("mess_answer records the reply", not r.is_error, texts(r))
        s, t = rest(base, "GET", f"/api/v1/exchanges/home/requests/{ref}", hkey)
        last = t["thread"]["messages"][-1]
        check("the human sees the agent's reply", last["from"] == "mcp-agent"
              and "The left one." in json.dumps(last), f"{last}")

        async def complete_later():
            await asyncio.sleep(1)
            return await asyncio.to_thread(human, base, hkey, ref, photo_answer())

        done = asyncio.create_task(complete_later())
        r = await c.call_tool("mess_wait", {"ref": ref, "since": version + 1,
                                            "timeout_seconds": 30})
        await done
        check("mess_wait returns the answer when it comes, with the photo as image content",
              not r.is_error and r.structured_content.get("status") == "completed"
              and "door is closed" in texts(r) and len(images(r)) == 1
              and images(r)[0].mime_type == "image/png"
              and base64.b64decode(images(r)[0].data) == base64.b64decode(PNG), texts(r)[:300])
        r = await c.call_tool("mess_fetch", {"ref": ref, "name": "1"})
        check("mess_fetch returns the photo", not r.is_error and len(images(r)) == 1, f"{r}")
        templates = (await c.list_resource_templates()).resource_templates
        check("resource templates: thread://{ref} and content://{ref}/{name}",
              [t.uri_template for t in templates] == ["thread://{ref}", "content://{ref}/{name}"],
              f"{templates}")
        res = await c.read_resource(f"thread://{ref}")
        thread = json.loads(res.contents[0].text)
        check("thread://{ref} reads the thread as JSON",
              thread.get("ref") == ref and thread.get("status") == "completed", f"{res}")
        res = await c.read_resource(f"content://{ref}/1")
        check("content://{ref}/1 reads the photo",
              res.contents[0].mime_type == "image/png"
              and base64.b64decode(res.contents[0].blob) == base64.b64decode(PNG), f"{res}")
        try:
            await c.read_resource("thread://2026-01-01-NOPE")
            check("an unknown thread resource: a protocol error", False)
        except MCPError as e:
            check("an unknown thread resource: a protocol error", e.error.code in (-32002, -32602),
                  f"{e.error}")
        r = await c.call_tool("mess_wait", {"ref": ref, "timeout_seconds": 1})
        check("mess_wait with nothing new answers after its timeout", not r.is_error
              and "No new messages" in texts(r), texts(r))
        r = await c.call_tool("mess_capabilities", {})
        caps = (r.structured_content or {}).get("capabilities", [])
        check("mess_capabilities counts members per capability",
              {"capability": "home:door", "members": 1, "reachable": 0} in caps, f"{caps}")

    # The same flow as a Task: the task id is the ref; a question is input_required.
    async with client(base, akey, tasks=True) as c:
        created = await c.session.call_tool("mess_request", {"intent": "Photo of the shed"},
                                            allow_claimed=True)
        tid = getattr(created, "task_id", None)
        check("with the Tasks extension, mess_request answers a task named by the ref",
              isinstance(created, CreateTaskResult) and tid and tid[:4].isdigit()
              and created.status == "working", f"{created}")
        s, thread = rest(base, "GET", f"/api/v1/exchanges/home/requests/{tid}", akey)
        check("the task's thread exists", s == 200, f"{s}")
        human(base, hkey, tid, {"status": "claimed"})
        t = await task_get(c.session, tid)
        check("tasks/get: working, the message says who holds it", t.status == "working"
              and "mcp-human" in (t.status_message or ""), f"{t}")
        human(base, hkey, tid, {"status": "needs_input", "message": "Front or back of the shed?"})
        t = await task_get(c.session, tid)
        reqs = t.input_requests or {}
        key = next(iter(reqs), None)
        check("tasks/get: the question surfaces as input_required with an elicitation",
              t.status == "input_required" and key
              and "Front or back" in json.dumps(reqs[key]), f"{t}")
        await c.session.send_request(TasksUpdate(params=UpdateTaskParams(
            task_id=tid, input_responses={key: {"action": "accept",
                                                "content": {"answer": "The front."}}})), AckResult)
        t = await task_get(c.session, tid)
        s, thread = rest(base, "GET", f"/api/v1/exchanges/home/requests/{tid}", hkey)
        check("tasks/update: the answer is recorded as a reply; the task is working again",
              t.status == "working" and "The front." in json.dumps(thread["thread"]["messages"][-1]),
              f"{t.status}")
        # Cancelling a task cancels the thread.
        other = await c.session.call_tool("mess_request", {"intent": "Never mind this one"},
                                          allow_claimed=True)
        await c.session.send_request(TasksCancel(params=TaskIdParams(task_id=other.task_id)),
                                     AckResult)
        s, b = rest(base, "GET", f"/api/v1/exchanges/home/requests/{other.task_id}", akey)
        t2 = await task_get(c.session, other.task_id)
        check("tasks/cancel cancels the thread; the task is cancelled",
              b["thread"]["status"] == "cancelled" and t2.status == "cancelled", f"{t2}")
        try:
            await task_get(c.session, "2026-01-01-NOPE")
            check("tasks/get of an unknown id: a protocol error", False)
        except MCPError as e:
            check("tasks/get of an unknown id: a protocol error", e.error.code == -32602)
    # The client has gone; the human completes; the server restarts (test-mcp.sh).
    s, _ = human(base, hkey, tid, photo_answer())
    check("the human completes the task's thread with a photo", s == 200, f"{s}")
    json.dump({"agent": akey, "task": tid}, open(state_file, "w"))

    # The official TypeScript SDK (2025-11-25, sessions) lists the tools and calls one.
    res = subprocess.run(["node", "scripts/mcp/ts_client.mjs",
                          f"{base}/api/v1/exchanges/home/mcp", akey],
                         capture_output=True, text=True, timeout=120)
    try:
        ts = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        ts = {}
    check("the TypeScript SDK lists the tools and calls mess_status",
          ts.get("tools", [])[:1] == ["mess_request"] and ts.get("status_error") is False
          and "open requests" in (ts.get("status_text") or ""),
          f"{res.returncode} {res.stdout[-300:]} {res.stderr[-500:]}")


async def resume(base, state_file):
    st = json.load(open(state_file))
    async with client(base, st["agent"], tasks=True) as c:
        t = await task_get(c.session, st["task"])
        result = CallToolResult.model_validate(t.result or {"content": []})
        check("after a restart, a new client resumes the task by id: completed with the answer",
              t.status == "completed" and not result.is_error
              and "door is closed" in texts(result) and len(images(result)) == 1, f"{t}")


def main():
    mode, base, state = sys.argv[1:4]
    asyncio.run(agent(base, state) if mode == "agent" else resume(base, state))
    print(f"mcp-{mode}: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
