"""The seed's flow through the Python client generated from openapi.yaml.

Usage: python_flow.py BASE_URL  (with the generated package `mess_exchange_client` importable)

register two members -> create a request -> claim it with the other member -> complete it
with a `mess` response block -> get the thread -> list requests -> list executors, each call
through the generated typed functions, each answer checked (status code and parsed model).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid

import httpx

from mess_exchange_client import AuthenticatedClient, Client
from mess_exchange_client.api.executors import list_executors, register
from mess_exchange_client.api.operations import health
from mess_exchange_client.api.requests import (
    create_request,
    get_request,
    list_requests,
    update_request,
)
from mess_exchange_client.models import (
    CreateBody,
    CreateResponse,
    ExecutorList,
    Health,
    PriorityName,
    RegisterBody,
    RegisterResponse,
    StatusInput,
    StatusName,
    ThreadList,
    ThreadResponse,
    UpdateBody,
    UpdateResponse,
)
from mess_exchange_client.models.update_body_mess_type_0_item import UpdateBodyMessType0Item

EXCHANGE = "home"


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


def expect(resp, code: int, model: type, what: str):
    if resp.status_code != code:
        body = resp.content.decode(errors="replace")[:500]
        raise AssertionError(f"{what}: expected HTTP {code}, got {int(resp.status_code)}: {body}")
    check(True, f"{what}: HTTP {code}")
    check(isinstance(resp.parsed, model), f"{what}: parsed as {model.__name__}")
    return resp.parsed


def main(base_url: str) -> None:
    anon = Client(base_url=base_url, raise_on_unexpected_status=True)
    h = expect(health.sync_detailed(client=anon), 200, Health, "health")
    check(h.status == "ok", "health is ok")

    suffix = uuid.uuid4().hex[:8]
    requestor_id, executor_id = f"py-agent-{suffix}", f"py-phone-{suffix}"

    keys = {}
    for member, caps in ((requestor_id, []), (executor_id, ["photo:capture"])):
        r = expect(
            register.sync_detailed(
                EXCHANGE,
                client=anon,
                body=RegisterBody(executor_id=member, display_name=member, capabilities=caps),
            ),
            201,
            RegisterResponse,
            f"register {member}",
        )
        check(r.executor_id == member, f"registered as {member}")
        check(r.api_key.startswith(f"mess_{EXCHANGE}_"), "the key names its exchange")
        keys[member] = r.api_key

    agent = AuthenticatedClient(base_url=base_url, token=keys[requestor_id])
    phone = AuthenticatedClient(base_url=base_url, token=keys[executor_id])

    created = expect(
        create_request.sync_detailed(
            EXCHANGE,
            client=agent,
            body=CreateBody(
                intent="Check if the garage door is closed",
                context=["Getting ready for bed"],
                priority=PriorityName.NORMAL,
                response_hint=["image"],
            ),
        ),
        201,
        CreateResponse,
        "create a request",
    )
    ref = created.ref
    check(created.status == StatusName.PENDING, f"{ref} is pending")

    claimed = expect(
        update_request.sync_detailed(
            EXCHANGE, ref, client=phone, body=UpdateBody(status=StatusInput.CLAIMED)
        ),
        200,
        UpdateResponse,
        "claim it",
    )
    check(claimed.status == StatusName.CLAIMED, "claimed")
    check(claimed.thread.executor_id == executor_id, "the claimer is the assignee")

    response_block = UpdateBodyMessType0Item.from_dict(
        {"response": {"content": ["Garage is closed"]}}
    )
    done = expect(
        update_request.sync_detailed(
            EXCHANGE,
            ref,
            client=phone,
            body=UpdateBody(status=StatusInput.COMPLETED, mess=[response_block]),
        ),
        200,
        UpdateResponse,
        "complete it with a response block",
    )
    check(done.status == StatusName.COMPLETED, "completed")

    t = expect(
        get_request.sync_detailed(EXCHANGE, ref, client=agent), 200, ThreadResponse, "get it"
    ).thread
    check(t.ref == ref, "same ref")
    check(t.status == StatusName.COMPLETED, "status completed")
    check(t.executor_id == executor_id, "executor_id is the claimer")
    check(t.requestor_id == requestor_id, "requestor_id is the creator")
    check(t.intent == "Check if the garage door is closed", "intent kept")
    msgs = [(m.from_, [b.to_dict() for b in m.mess]) for m in t.messages]
    check(len(msgs) == 3, f"three messages (request, claim, completion): {len(msgs)}")
    check(msgs[0][0] == requestor_id and "request" in msgs[0][1][0], "first: the request")
    request_block = msgs[0][1][0]["request"]
    check(request_block.get("context") == ["Getting ready for bed"], "context kept")
    check(request_block.get("response_hint") == ["image"], "response_hint kept")
    check(
        msgs[1] == (executor_id, [{"status": {"re": ref, "code": "claimed"}}]),
        "second: the claim's status block",
    )
    check(
        msgs[2]
        == (
            executor_id,
            [
                {"status": {"re": ref, "code": "completed"}},
                {"response": {"content": ["Garage is closed"]}},
            ],
        ),
        "third: the status block, then the response block",
    )

    page = expect(
        list_requests.sync_detailed(EXCHANGE, client=agent, limit=50),
        200,
        ThreadList,
        "list requests",
    )
    check(any(s.ref == ref for s in page.threads), "the thread is listed")
    done_page = expect(
        list_requests.sync_detailed(EXCHANGE, client=agent, status=StatusInput.COMPLETED),
        200,
        ThreadList,
        "list completed requests",
    )
    check(
        all(s.status == StatusName.COMPLETED for s in done_page.threads)
        and any(s.ref == ref for s in done_page.threads),
        "the status filter works",
    )

    members = expect(
        list_executors.sync_detailed(EXCHANGE, client=phone), 200, ExecutorList, "list executors"
    )
    ids = {e.id for e in members.executors}
    check({requestor_id, executor_id} <= ids, "both members listed")
    phone_view = next(e for e in members.executors if e.id == executor_id)
    check(phone_view.capabilities == ["photo:capture"], "capabilities listed")
    wait_loop(base_url, keys[requestor_id], phone)
    print("python client: all checks passed")


FINISHED = ("completed", "partial", "failed", "declined", "expired", "cancelled")


def wait_loop(base_url: str, key: str, phone: AuthenticatedClient) -> None:
    """docs/agents.md's wait loop, as written there, while a person answers meanwhile."""

    def person(ref: str) -> None:
        time.sleep(1)
        update_request.sync_detailed(EXCHANGE, ref, client=phone,
                                     body=UpdateBody(status=StatusInput.CLAIMED))
        time.sleep(1)
        update_request.sync_detailed(EXCHANGE, ref, client=phone,
                                     body=UpdateBody(status=StatusInput.COMPLETED))

    started = time.monotonic()
    # --- as in docs/agents.md ---
    agent = AuthenticatedClient(base_url=base_url, token=key, timeout=httpx.Timeout(70))
    ref = create_request.sync(EXCHANGE, client=agent, body=CreateBody(intent="Is the garage door closed?")).ref
    threading.Thread(target=person, args=(ref,)).start()
    version = 1
    rounds = 0
    while True:
        thread = get_request.sync(EXCHANGE, ref, client=agent, wait=50, since=version).thread
        version = thread.version
        rounds += 1
        if thread.status in FINISHED:
            break
    # ---
    took = time.monotonic() - started
    check(thread.status == StatusName.COMPLETED and version == 3,
          f"the wait loop ends with the answer (version {version})")
    check(rounds == 2 and took < 30, f"each change answered a held GET at once ({rounds} rounds, {took:.1f} s)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python_flow.py BASE_URL")
    main(sys.argv[1].rstrip("/"))
