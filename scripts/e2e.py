#!/usr/bin/env python3
"""One black-box suite, two hosts: the end-to-end API scenarios, run unchanged against the
binary (scripts/test-e2e.sh) and against the Worker under `wrangler dev`
(scripts/test-worker.sh).

    e2e.py api BASE_URL STATE_FILE STORAGE    the API scenarios; saves what phase 2 needs.
                                              STORAGE is what /health must name: the one
                                              answer that differs by host (filesystem, s3, r2)
    e2e.py after-restart BASE_URL STATE_FILE  the same answers after a restart (the binary
                                              replays its log, a Durable Object rebuilds
                                              from R2)
    e2e.py r2 STATE_FILE PERSIST_DIR CONFIG   the Worker only: the R2 objects' keys and
                                              lines in wrangler's local state

Prints one line per check and `N passed, M failed`; exits non-zero on a failure.
Standard library only.
"""

import glob
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

PASSED = 0
FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name} {detail}")


def call(base, method, path, key=None, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            raw, status, hdrs = res.read(), res.status, res.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    ctype = hdrs.get("Content-Type", "")
    if ctype.startswith("application/json"):
        return status, json.loads(raw or b"null"), hdrs
    return status, raw, hdrs


class Feed:
    """A change-feed stream (GET .../events) read line by line in a background thread."""

    def __init__(self, base, path, key, headers=None):
        import http.client
        import urllib.parse
        u = urllib.parse.urlsplit(base + path)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        hdrs = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        self.conn.request("GET", u.path + (f"?{u.query}" if u.query else ""), headers=hdrs)
        self.res = self.conn.getresponse()
        self.status = self.res.status
        self.ctype = self.res.getheader("Content-Type", "")
        self.events, self.comments = [], 0
        self.lock = threading.Lock()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            raw = self.res.read()
            self.body = json.loads(raw) if raw else None

    def _read(self):
        ev = {}
        try:
            for line in self.res:
                line = line.decode().rstrip("\n")
                if line == "":
                    if "data" in ev:
                        with self.lock:
                            self.events.append(ev)
                    ev = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
        except Exception:
            pass

    def wait_for(self, pred, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                for e in self.events:
                    if pred(e):
                        return e
            time.sleep(0.05)
        return None

    def close(self):
        self.conn.close()


def feed_and_idempotency(base, home, phone, agent):
    """The change feed and Idempotency-Key (protocol.md, Closing the loop)."""
    s, lst, _ = call(base, "GET", f"{home}/requests?limit=1", key=agent)
    head = lst.get("pos") if s == 200 else None
    check("list answers carry the feed's head pos", isinstance(head, int) and head > 0,
          f"{s} {lst}")
    feed = Feed(base, f"{home}/events", agent)
    check("feed: 200 text/event-stream", feed.status == 200
          and feed.ctype.startswith("text/event-stream"), f"{feed.status} {feed.ctype}")
    s, created, _ = call(base, "POST", f"{home}/requests", key=agent,
                         body={"intent": "Is the porch light on?"})
    fref = created.get("ref")
    ev = feed.wait_for(lambda e: e.get("event") == "thread_created"
                       and json.loads(e["data"]).get("ref") == fref)
    data = json.loads(ev["data"]) if ev else {}
    check("feed: a create arrives as thread_created with pos, version 1, status, actor",
          ev is not None and ev.get("id") == str(data.get("pos")) and data.get("version") == 1
          and data.get("status") == "pending" and data.get("actor") == "claude-agent"
          and data.get("type") == "thread_created" and data["pos"] > head
          and data.get("event", {}).get("event_type") == "thread_created", f"{ev}")
    created_pos = data.get("pos", 0)
    call(base, "PATCH", f"{home}/requests/{fref}", key=phone, body={"status": "claimed"})
    s, _, _ = call(base, "PATCH", f"{home}/requests/{fref}", key=phone, body={
        "status": "completed",
        "mess": [{"response": {"content": ["on"], "image": "data:image/png;base64,aGVsbG8="}}]})
    ev = feed.wait_for(lambda e: e.get("event") == "message_added" and "response" in e["data"]
                       and json.loads(e["data"]).get("ref") == fref)
    raw = ev["data"] if ev else ""
    check("feed: attachments arrive as links, never inline",
          ev is not None and "data:image" not in raw
          and f"/requests/{fref}/attachments/1" in raw, raw[:300])
    feed.close()
    resumed = Feed(base, f"{home}/events", agent, {"Last-Event-ID": str(created_pos - 1)})
    ev = resumed.wait_for(lambda e: True)
    check("feed: Last-Event-ID resumes from the window, in order",
          resumed.status == 200 and ev is not None and ev.get("id") == str(created_pos),
          f"{resumed.status} {ev}")
    resumed.close()
    bad = Feed(base, f"{home}/events", agent, {"Last-Event-ID": "not-a-position"})
    check("feed: a garbage Last-Event-ID is 400 JSON", bad.status == 400
          and (bad.body or {}).get("code") == "invalid_request", f"{bad.status}")
    bad = Feed(base, f"{home}/events?since=-4", agent)
    check("feed: a negative since is 400", bad.status == 400, f"{bad.status}")
    s, b, _ = call(base, "GET", f"{home}/events")
    check("feed: no key is 401", s == 401, f"{s}")
    # A proxy closes a connection idle for long: an idle stream gets a comment every 15 s.
    idle = Feed(base, f"{home}/events", agent)
    time.sleep(16.5)
    check("feed: a stream gets a keep-alive comment every 15 s",
          idle.status == 200 and idle.comments >= 2,
          f"{idle.status} comments={idle.comments} events={len(idle.events)}")
    idle.close()

    # Idempotency-Key on create: replayed, never twice; a different body is 422.
    body = {"intent": "Water the plants", "context": [{"text": "the ferns"}]}
    key = {"Idempotency-Key": "create-plants-1"}
    s1, b1, h1 = call(base, "POST", f"{home}/requests", key=agent, body=body, headers=key)
    s2, b2, h2 = call(base, "POST", f"{home}/requests", key=agent,
                      body={"context": [{"text": "the ferns"}], "intent": "Water the plants"},
                      headers=key)
    check("idempotency: a retried create gets the first answer, marked replayed",
          s1 == 201 and s2 == 201 and b1 == b2 and h2.get("Idempotent-Replayed") == "true"
          and h1.get("Idempotent-Replayed") is None, f"{s1} {s2} {b1} {b2}")
    s, lst, _ = call(base, "GET", f"{home}/requests?limit=500", key=agent)
    plants = [t for t in lst.get("threads", []) if t["intent"] == "Water the plants"]
    check("idempotency: one thread, not two", len(plants) == 1, f"{len(plants)}")
    s, b, _ = call(base, "POST", f"{home}/requests", key=agent,
                   body={"intent": "Something else"}, headers=key)
    check("idempotency: the same key with another body is 422 idempotency_key_reused",
          s == 422 and b.get("code") == "idempotency_key_reused", f"{s} {b}")
    s, b, _ = call(base, "POST", f"{home}/requests", key=phone, body=body, headers=key)
    check("idempotency: another member's same key is its own scope (201, new thread)",
          s == 201 and b.get("ref") != b1.get("ref"), f"{s} {b}")
    s, b, _ = call(base, "POST", f"{home}/requests", key=agent, body=body,
                   headers={"Idempotency-Key": "x" * 256})
    check("idempotency: a key over 255 characters is 400", s == 400, f"{s} {b}")
    # Two concurrent sends of one key: one thread, the same answer twice.
    answers = []

    def send():
        answers.append(call(base, "POST", f"{home}/requests", key=agent,
                            body={"intent": "Concurrent retry"},
                            headers={"Idempotency-Key": "concurrent-1"}))

    ts = [threading.Thread(target=send) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=30)
    refs = {a[1].get("ref") for a in answers if a[0] == 201}
    check("idempotency: four concurrent sends of one key make one thread",
          len(answers) == 4 and all(a[0] == 201 for a in answers) and len(refs) == 1,
          f"{[a[0] for a in answers]} {refs}")
    # On PATCH: a retried claim is replayed and the thread's version moves once.
    pref = b1.get("ref")
    ck = {"Idempotency-Key": "claim-plants-1"}
    s1, c1, _ = call(base, "PATCH", f"{home}/requests/{pref}", key=phone,
                     body={"status": "claimed"}, headers=ck)
    s2, c2, h2 = call(base, "PATCH", f"{home}/requests/{pref}", key=phone,
                      body={"status": "claimed"}, headers=ck)
    s, t, _ = call(base, "GET", f"{home}/requests/{pref}", key=phone)
    check("idempotency: a retried claim is replayed; the version moved once",
          s1 == 200 and s2 == 200 and c1 == c2 and h2.get("Idempotent-Replayed") == "true"
          and t.get("thread", {}).get("version") == 2, f"{s1} {s2} {t.get('thread', {}).get('version')}")
    return {"idem_body": body, "idem_ref": b1.get("ref")}


def quick_actions_and_revisions(base, home, phone, agent):
    """protocol.md: a status path in one PATCH, passing on an offer, revision_requested."""
    s, c, _ = call(base, "POST", f"{home}/requests", key=agent, body={"intent": "Lock the shed"})
    r = c.get("ref")
    path = [{"status": {"code": "claimed"}}, {"status": {"code": "completed"}},
            {"response": {"content": ["locked"]}}]
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=phone,
                   body={"status": "completed", "mess": path})
    s2, t, _ = call(base, "GET", f"{home}/requests/{r}", key=agent)
    th = t.get("thread", {}) if isinstance(t, dict) else {}
    check("a path: claimed then completed in one PATCH, one message kept as sent",
          s == 200 and b.get("status") == "completed" and th.get("executor_id") == "my-phone"
          and th.get("version") == 2 and th.get("messages", [{}])[-1].get("mess") == path,
          f"{s} {b.get('status')} {th.get('version')}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=agent,
                   body={"status": "revision_requested"})
    check("revision without a reason: 400", s == 400, f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=phone,
                   body={"status": "revision_requested", "reason": "again"})
    check("revision by the assignee: 403", s == 403, f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=agent,
                   body={"status": "revision_requested", "reason": "Is the padlock on too?"})
    th = b.get("thread", {}) if isinstance(b, dict) else {}
    last = th.get("messages", [{}])[-1].get("mess", [{}])[0].get("status", {})
    check("revision by the requestor: in_progress, same assignee, the reason recorded",
          s == 200 and b.get("status") == "in_progress" and th.get("executor_id") == "my-phone"
          and last.get("code") == "revision_requested"
          and last.get("reason") == "Is the padlock on too?", f"{s} {b.get('status')} {last}")
    s, b, _ = call(base, "GET", f"{home}/requests?status=revision_requested", key=agent)
    check("revision_requested is not a status filter: 400", s == 400, f"{s}")
    s, c, _ = call(base, "POST", f"{home}/requests", key=agent, body={"intent": "Feed the cat"})
    r = c.get("ref")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=phone,
                   body={"status": "declined", "message": "Not home today"})
    s2, t, _ = call(base, "GET", f"{home}/requests/{r}", key=agent)
    th = t.get("thread", {}) if isinstance(t, dict) else {}
    check("passing on an offer: 200 pending, the message recorded, nobody holds it",
          s == 200 and b.get("status") == "pending" and th.get("status") == "pending"
          and th.get("executor_id") is None and th.get("version") == 2, f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=agent, body={"status": "declined"})
    check("the requestor cannot pass on its own request: 409", s == 409, f"{s} {b}")


def offer_reminders(base, home, phone, agent):
    """protocol.md, Time: an offer nobody takes is made once more at half the time to its
    needed_by, then the requestor is told (thread_unclaimed), both in the feed."""
    feed = Feed(base, f"{home}/events", agent)
    needed_by = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    s, c, _ = call(base, "POST", f"{home}/requests", key=agent,
                   body={"intent": "Is the gate shut?", "needed_by": needed_by})
    r = c.get("ref")
    on = lambda kind: lambda e: e.get("event") == kind and json.loads(e["data"]).get("ref") == r
    reminded = feed.wait_for(on("offer_reminded"), timeout=15)
    unclaimed = feed.wait_for(on("thread_unclaimed"), timeout=15)
    feed.close()
    data = json.loads(reminded["data"]) if reminded else {}
    check("an offer nobody takes is made once more (offer_reminded, by the exchange)",
          s == 201 and data.get("actor") == "exchange" and data.get("status") == "pending",
          f"{s} {reminded}")
    check("then its requestor is told (thread_unclaimed in the feed)", unclaimed is not None,
          f"{unclaimed}")


def the_app(base):
    """The executor's app, served by either host from the same embedded assets."""
    s, raw, h = call(base, "GET", "/")
    csp = h.get("Content-Security-Policy", "")
    check("GET /: the app's page, with a strict CSP and no cookie",
          s == 200 and h.get("Content-Type", "").startswith("text/html")
          and b"/app/app.js" in raw and "script-src 'self'" in csp
          and "unsafe-inline" not in csp and h.get("Set-Cookie") is None, f"{s} {csp}")
    s, raw, h = call(base, "GET", "/app/app.js")
    etag = h.get("ETag")
    check("/app/app.js: a module, revalidated by ETag",
          s == 200 and h.get("Content-Type", "").startswith("text/javascript")
          and h.get("Cache-Control") == "no-cache" and etag, f"{s} {h.get('Cache-Control')}")
    s, _, _ = call(base, "GET", "/app/app.js", headers={"If-None-Match": etag or "x"})
    check("/app/app.js with its ETag: 304", s == 304, f"{s}")
    s, b, _ = call(base, "GET", "/app/nope.js")
    check("an unknown asset: 404 JSON", s == 404 and "error" in (b or {}), f"{s} {b}")


def action_links(base, home, phone, agent):
    """/a/{token}: a notification's one-tap claim, on either host. The test signs tokens
    with the host's key (MESS_ACTION_LINK_KEY_FILE: the binary's secrets/action-links.key,
    or the Worker's ACTION_LINK_KEY), as an offer to my-phone would carry them."""
    import base64
    import hashlib
    import hmac
    path = os.environ.get("MESS_ACTION_LINK_KEY_FILE")
    if not path:
        return
    key = open(path, "rb").read()

    def token(ref, version, expires=None):
        expires = expires or int(time.time()) + 3600
        payload = f"1|home|my-phone|{ref}|{version}|{expires}|claim".encode()
        tag = hmac.new(key, payload, hashlib.sha256).digest()[:16]
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        return f"{b64(payload)}.{b64(tag)}"

    s, c, _ = call(base, "POST", f"{home}/requests", key=agent, body={"intent": "Take the bins out"})
    ref = c.get("ref")
    s, t, _ = call(base, "GET", f"{home}/requests/{ref}", key=agent)
    version = t.get("thread", {}).get("version")
    good = token(ref, version)
    s, raw, h = call(base, "GET", f"/a/{good}", headers={"Accept": "text/html"})
    s2, t2, _ = call(base, "GET", f"{home}/requests/{ref}", key=agent)
    check("/a/{token} GET: a confirm page with a strict CSP, and nothing changes",
          s == 200 and h.get("Content-Type", "").startswith("text/html") and b"<form" in raw
          and "default-src" in h.get("Content-Security-Policy", "")
          and t2.get("thread", {}).get("status") == "pending", f"{s} {raw[:200]!r}")
    s, b, _ = call(base, "POST", f"/a/{good}")
    s2, t2, _ = call(base, "GET", f"{home}/requests/{ref}", key=agent)
    check("/a/{token} POST: claims the request for the member it was sent to",
          s == 200 and b.get("status") == "claimed" and t2["thread"]["executor_id"] == "my-phone",
          f"{s} {b}")
    s, b, _ = call(base, "POST", f"/a/{good}")
    check("/a/{token} a second time: 409, the link was used",
          s == 409 and b.get("code") == "already_claimed", f"{s} {b}")
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    s, b, _ = call(base, "POST", f"/a/{forged}")
    check("/a/{token} with a forged signature: 403 JSON", s == 403 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "GET", f"/a/{token(ref, version, expires=1000)}")
    check("/a/{token} past its expiry: 410", s == 410 and b.get("code") == "link_expired", f"{s} {b}")


def photos(base, home, phone, agent):
    """Attachments kept once as blobs (protocol.md, Attachments); returns what phase 2 needs."""
    import base64
    import hashlib
    photo = bytes((i * 7 + i // 251) % 256 for i in range(200_000))
    uri = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
    s, c, _ = call(base, "POST", f"{home}/requests", key=agent,
                   body={"intent": "Photo of the fuse box", "context": ["like this:", uri]})
    pref = c.get("ref") if s == 201 else None
    check("a request with a photo in its context: 201", s == 201, f"{s} {c}")
    call(base, "PATCH", f"{home}/requests/{pref}", key=phone, body={"status": "claimed"})
    s, b, _ = call(base, "PATCH", f"{home}/requests/{pref}", key=phone, body={
        "status": "completed", "mess": [{"response": {"content": ["here", {"image": uri}]}}]})
    last = (b.get("thread", {}).get("messages") or [{}])[-1] if s == 200 else {}
    check("complete with a photo: the answer holds the data: URI as sent",
          s == 200 and last.get("mess", [{}, {}])[1] == {"response": {"content": ["here", {"image": uri}]}},
          f"{s}")
    s, t, h = call(base, "GET", f"{home}/requests/{pref}", key=agent)
    msgs = t.get("thread", {}).get("messages", []) if s == 200 else []
    check("GET: every photo comes back as the very data: URI sent",
          len(msgs) == 3 and msgs[0]["mess"][0]["request"]["context"][1] == uri
          and msgs[2]["mess"][1]["response"]["content"][1]["image"] == uri, f"{s}")
    version = t.get("thread", {}).get("version")
    s, t, h = call(base, "GET", f"{home}/requests/{pref}?attachments=links", key=agent)
    msgs = t.get("thread", {}).get("messages", []) if s == 200 else []
    link = f"{home}/requests/{pref}/attachments/"
    check("?attachments=links: links in document order, ETag \"<version>-links\"",
          len(msgs) == 3 and msgs[0]["mess"][0]["request"]["context"][1] == link + "1"
          and msgs[2]["mess"][1]["response"]["content"][1]["image"] == link + "2"
          and h.get("ETag") == f'"{version}-links"', f"{s} {h.get('ETag')}")
    s, raw, h = call(base, "GET", f"{home}/requests/{pref}/attachments/2", key=agent)
    etag = f'"{hashlib.sha256(photo).hexdigest()}"'
    check("the attachment route: the bytes, their type, the SHA-256 as ETag",
          s == 200 and raw == photo and h.get("Content-Type") == "image/jpeg"
          and h.get("ETag") == etag and h.get("Accept-Ranges") == "bytes"
          and h.get("Cache-Control") == "private, max-age=86400",
          f"{s} {len(raw)} {h.get('ETag')} {h.get('Cache-Control')}")
    s, raw, h = call(base, "GET", f"{home}/requests/{pref}/attachments/2", key=agent,
                     headers={"Range": "bytes=1000-1999"})
    check("a byte range: 206 with Content-Range",
          s == 206 and raw == photo[1000:2000]
          and h.get("Content-Range") == f"bytes 1000-1999/{len(photo)}", f"{s} {len(raw)}")
    s, b, h = call(base, "GET", f"{home}/requests/{pref}/attachments/2", key=agent,
                   headers={"Range": f"bytes={len(photo)}-"})
    check("a range past the end: 416 JSON with Content-Range",
          s == 416 and b.get("code") == "range_not_satisfiable"
          and h.get("Content-Range") == f"bytes */{len(photo)}", f"{s} {b}")
    s, raw, _ = call(base, "GET", f"{home}/requests/{pref}/attachments/2", key=agent,
                     headers={"If-None-Match": etag})
    check("If-None-Match with the attachment's ETag: 304", s == 304, f"{s}")
    forged = "mess-blob:sha256:" + hashlib.sha256(photo).hexdigest() + ":image/jpeg;base64"
    s, b, _ = call(base, "POST", f"{home}/requests", key=phone,
                   body={"intent": "borrowed photo", "context": [forged]})
    check("a client cannot send a blob reference: 400", s == 400 and "reserved" in
          b.get("error", ""), f"{s} {b}")
    return {"photo_ref": pref, "photo_sha": hashlib.sha256(photo).hexdigest(),
            "photo_b64_head": uri[23:123], "photo_uri_sha": hashlib.sha256(uri.encode()).hexdigest()}


def claim_time_limit(base, home, phone, agent):
    """protocol.md, Time: a claim with no word from its assignee goes back to pending."""
    s, c, _ = call(base, "POST", f"{home}/requests", key=agent,
                   body={"intent": "Bring in the laundry", "claim_timeout": "PT1S"})
    r = c.get("ref")
    s, b, _ = call(base, "POST", f"{home}/requests", key=agent,
                   body={"intent": "x", "claim_timeout": "soon"})
    check("a claim_timeout that is not an ISO 8601 duration: 400", s == 400, f"{s} {b}")
    call(base, "PATCH", f"{home}/requests/{r}", key=phone, body={"status": "claimed"})
    th = {}
    for _ in range(40):
        time.sleep(0.25)
        s, t, _ = call(base, "GET", f"{home}/requests/{r}", key=agent)
        th = t.get("thread", {}) if isinstance(t, dict) else {}
        if th.get("status") == "pending":
            break
    last = (th.get("messages") or [{}])[-1]
    block = (last.get("mess") or [{}])[0].get("status", {})
    check("a claim past its time limit goes back to pending, by the exchange, saying why",
          th.get("status") == "pending" and th.get("executor_id") is None
          and last.get("from") == "exchange" and block.get("reason") == "claim_timeout",
          f"{th.get('status')} {last}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{r}", key=phone, body={"status": "claimed"})
    check("and anyone may claim it again", s == 200 and b.get("status") == "claimed", f"{s} {b}")
    # Finished, so that nothing changes by itself while the restart checks compare.
    call(base, "PATCH", f"{home}/requests/{r}", key=phone, body={"status": "completed"})


def api(base, state_file, storage):
    home = "/api/v1/exchanges/home"

    s, b, h = call(base, "GET", "/health")
    check(f"health is 200 with storage {storage}", s == 200 and b.get("storage") == storage
          and b.get("status") == "ok" and b.get("service") == "mess-exchange", f"{s} {b}")

    s, phone, _ = call(base, "POST", f"{home}/register", body={
        "executor_id": "my-phone", "display_name": "My Phone",
        "capabilities": ["photo:capture", "location:indoor"],
        "notifications": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]})
    check("register my-phone: 201 with a key and the seed's message",
          s == 201 and phone.get("executor_id") == "my-phone"
          and phone.get("api_key", "").startswith("mess_home_")
          and phone.get("message") == "Save this API key - it cannot be retrieved again.",
          f"{s} {phone}")
    phone = phone.get("api_key", "")
    s, agent, _ = call(base, "POST", f"{home}/register", body={
        "executor_id": "claude-agent",
        "hooks": {"on_request_created": {"url": "http://127.0.0.1:9/ha/{{ref}}",
                                         "body": {"text": "{{intent}}"}}}})
    check("register claude-agent: 201", s == 201, f"{s} {agent}")
    agent = agent.get("api_key", "")
    s, tablet, _ = call(base, "POST", f"{home}/register", body={"executor_id": "tablet"})
    tablet = tablet.get("api_key", "")
    s, b, _ = call(base, "POST", f"{home}/register", body={"executor_id": "my-phone"})
    check("registering a taken id: 409 JSON, code already_registered",
          s == 409 and "error" in b and b.get("code") == "already_registered", f"{s} {b}")
    s, b, _ = call(base, "POST", f"{home}/register", body={"executor_id": "exchange"})
    check("registering the exchange's own id: 409 reserved_id",
          s == 409 and b.get("code") == "reserved_id", f"{s} {b}")
    s, b, _ = call(base, "POST", "/api/v1/exchanges/Bad_Id/register", body={"executor_id": "x"})
    check("registering in an invalid exchange id: 400 JSON", s == 400 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "POST", f"{home}/register", body={"display_name": "no id"})
    check("registering without executor_id: 400 JSON", s == 400 and "error" in b, f"{s} {b}")
    s, b, h = call(base, "GET", f"{home}/register")
    check("GET /register: 405 with Allow: POST", s == 405 and h.get("Allow") == "POST", f"{s} {b}")

    s, b, h = call(base, "GET", f"{home}/requests")
    check("no key: 401 JSON with WWW-Authenticate",
          s == 401 and "error" in b and b.get("code") == "unauthorized"
          and h.get("WWW-Authenticate") == "Bearer", f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/requests", key="mess_home_" + "0" * 64)
    check("an unknown key: 401 JSON", s == 401 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/no-such-route")
    check("unknown route without a key: 401 (authentication first)", s == 401, f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/no-such-route", key=phone)
    check("unknown route with a key: 404 JSON", s == 404 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "GET", "/nowhere")
    check("unknown route outside the API: 404 JSON", s == 404 and "error" in b, f"{s} {b}")
    s, b, h = call(base, "DELETE", f"{home}/requests", key=phone)
    check("wrong method with a key: 405 with Allow",
          s == 405 and h.get("Allow") == "GET, POST" and "error" in b, f"{s} {b}")
    s, b, h = call(base, "OPTIONS", f"{home}/requests",
                   headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    check("CORS preflight: 204", s == 204 and h.get("Access-Control-Allow-Origin") == "*", f"{s}")

    s, office, _ = call(base, "POST", "/api/v1/exchanges/office/register",
                        body={"executor_id": "office-bot"})
    office = office.get("api_key", "")
    s, b, _ = call(base, "GET", f"{home}/requests", key=office)
    check("a key of another exchange: 403 JSON", s == 403 and "error" in b, f"{s} {b}")

    s, b, _ = call(base, "GET", f"{home}/requests", key=phone)
    check("list: empty at first", s == 200 and b.get("threads") == [] and b.get("next_cursor") is None,
          f"{s} {b}")

    s, created, _ = call(base, "POST", f"{home}/requests", key=agent, body={
        "intent": "Check if the garage door is closed", "context": ["Getting ready for bed"],
        "priority": "normal", "response_hint": ["image"], "requires": ["photo:capture"]})
    ref = created.get("ref", "")
    check("create: 201 pending with a ref", s == 201 and created.get("status") == "pending"
          and re.fullmatch(r"\d{4}-\d{2}-\d{2}-[A-Z0-9]{4,16}", ref) is not None, f"{s} {created}")
    s, b, _ = call(base, "POST", f"{home}/requests", key=agent, body={"intent": "   "})
    check("create with a blank intent: 400 JSON", s == 400 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "POST", f"{home}/requests", key=agent, body={"intent": "x", "priority": "asap"})
    check("create with an unknown priority: 400 JSON", s == 400 and "error" in b, f"{s} {b}")

    s, b, _ = call(base, "GET", f"{home}/requests/{ref}", key=phone)
    t = b.get("thread", {}) if isinstance(b, dict) else {}
    check("get: 200, the request message with every field sent",
          s == 200 and t.get("status") == "pending" and t.get("requestor_id") == "claude-agent"
          and t.get("messages", [{}])[0].get("mess", [{}])[0].get("request", {}).get("requires")
          == ["photo:capture"], f"{s} {b}")
    s, _, h = call(base, "GET", f"{home}/requests/{ref}", key=phone)
    etag = h.get("ETag")
    check("get: ETag names version 1", s == 200 and etag == '"1"' and t.get("version") == 1,
          f"{s} {etag} {t.get('version')}")
    s, raw, h = call(base, "GET", f"{home}/requests/{ref}", key=phone,
                     headers={"If-None-Match": etag or '"1"'})
    check("get with If-None-Match of the current version: 304, no body",
          s == 304 and not raw and h.get("ETag") == '"1"', f"{s} {raw!r}")
    s, b, _ = call(base, "GET", f"{home}/requests/2026-01-01-ZZZZ", key=phone)
    check("get an unknown ref: 404 JSON", s == 404 and b.get("error") == "Thread not found", f"{s} {b}")

    # Two concurrent claims: exactly one wins.
    results = {}

    def claim(who, key):
        results[who] = call(base, "PATCH", f"{home}/requests/{ref}", key=key,
                            body={"status": "claimed"})

    threads = [threading.Thread(target=claim, args=(w, k)) for w, k in
               (("my-phone", phone), ("tablet", tablet))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    codes = sorted(r[0] for r in results.values())
    check("two concurrent claims: exactly one 200, the other 409", codes == [200, 409],
          f"{ {w: (r[0], r[1]) for w, r in results.items()} }")
    winner = next((w for w, r in results.items() if r[0] == 200), "my-phone")
    loser_body = next((r[1] for r in results.values() if r[0] == 409), {})
    check("the losing claim's 409 says from/to",
          loser_body.get("from") == "claimed" and loser_body.get("to") == "claimed"
          and loser_body.get("code") == "already_claimed", f"{loser_body}")
    wkey = phone if winner == "my-phone" else tablet
    s, b, _ = call(base, "PATCH", f"{home}/requests/{ref}", key=wkey, body={"status": "claimed"})
    check("a repeated claim by the assignee: 200 no-op", s == 200 and b.get("status") == "claimed",
          f"{s} {b}")

    s, b, _ = call(base, "PATCH", f"{home}/requests/{ref}", key=wkey, body={
        "status": "completed",
        "mess": [{"response": {"content": ["Door is locked",
                                           {"image": "data:image/png;base64,aGVsbG8="}]}}]})
    msgs = b.get("thread", {}).get("messages", []) if isinstance(b, dict) else []
    last = msgs[-1]["mess"] if msgs else []
    check("complete with a response: 200, a status block then the response",
          s == 200 and b.get("status") == "completed" and len(last) == 2
          and last[0] == {"status": {"re": ref, "code": "completed"}} and "response" in last[1],
          f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{ref}", key=wkey, body={"status": "in_progress"})
    check("a forbidden move: 409 with from and to",
          s == 409 and b.get("from") == "completed" and b.get("to") == "in_progress"
          and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{ref}", key=wkey, body={"status": "done"})
    check("an unknown status: 400 JSON", s == 400 and "error" in b, f"{s} {b}")

    s, raw, h = call(base, "GET", f"{home}/requests/{ref}/attachments/1", key=agent)
    check("attachment 1: the decoded bytes with their MIME type",
          s == 200 and raw == b"hello" and h.get("Content-Type") == "image/png", f"{s} {raw!r}")
    s, raw, h = call(base, "GET", f"{home}/requests/{ref}/attachments/image", key=agent)
    check("attachment by name", s == 200 and raw == b"hello", f"{s}")
    s, b, _ = call(base, "GET", f"{home}/requests/{ref}/attachments/9", key=agent)
    check("an unknown attachment: 404 JSON", s == 404 and "error" in b, f"{s} {b}")

    # More threads for the filter and pagination.
    refs = [ref]
    for i in range(3):
        s, c, _ = call(base, "POST", f"{home}/requests", key=agent,
                       body={"intent": f"Task {i}", "priority": "background"})
        refs.append(c.get("ref"))
    s, b, _ = call(base, "GET", f"{home}/requests?status=completed", key=agent)
    check("list ?status=completed: only the completed thread",
          s == 200 and [t["ref"] for t in b.get("threads", [])] == [ref], f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/requests?status=received", key=agent)
    check("list ?status=received (alias of pending): the three new ones",
          s == 200 and len(b.get("threads", [])) == 3
          and all(t["status"] == "pending" for t in b["threads"]), f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/requests?status=bogus", key=agent)
    check("list ?status=bogus: 400", s == 400, f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/requests?limit=0", key=agent)
    check("list ?limit=0: 400", s == 400, f"{s} {b}")
    seen, cursor, pages = [], None, 0
    while pages < 10:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        s, b, _ = call(base, "GET", f"{home}/requests{q}", key=agent)
        if s != 200:
            break
        pages += 1
        seen += [t["ref"] for t in b["threads"]]
        cursor = b.get("next_cursor")
        if not cursor:
            break
    check("pagination: limit=2 pages through all 4, newest-updated first, once each",
          pages == 2 and len(seen) == 4 and sorted(seen) == sorted(refs)
          and seen[-1] == ref is not None and len(set(seen)) == 4, f"{pages} {seen}")

    # A bounded wait: held until the thread changes, then the new version.
    wref = refs[2]
    waited = {}

    def wait_for_change():
        waited["r"] = call(base, "GET", f"{home}/requests/{wref}?wait=30", key=phone)

    waiter = threading.Thread(target=wait_for_change)
    waiter.start()
    time.sleep(1)
    s, _, _ = call(base, "PATCH", f"{home}/requests/{wref}", key=agent,
                   body={"mess": [{"reply": {"content": ["any update?"]}}]})
    waiter.join(timeout=40)
    ws, wb, _ = waited.get("r", (None, {}, None))
    wt = wb.get("thread", {}) if isinstance(wb, dict) else {}
    check("wait: the held GET answers the change (version 2)",
          s == 200 and ws == 200 and wt.get("version") == 2
          and len(wt.get("messages", [])) == 2, f"{s} {ws} {wt.get('version')}")
    s, b, _ = call(base, "GET", f"{home}/requests/{wref}?wait=61", key=phone)
    check("wait above 60: 400 invalid_request", s == 400 and b.get("code") == "invalid_request",
          f"{s} {b}")
    idem = feed_and_idempotency(base, home, phone, agent)
    the_app(base)
    action_links(base, home, phone, agent)
    idem.update(photos(base, home, phone, agent))
    quick_actions_and_revisions(base, home, phone, agent)
    claim_time_limit(base, home, phone, agent)
    offer_reminders(base, home, phone, agent)
    if storage == "r2":
        # protocol.md, Agents over MCP: no MCP transport builds for wasm32 (yet).
        s, b, _ = call(base, "POST", f"{home}/mcp", key=agent, body={})
        check("the Worker's /mcp: 501 JSON not_implemented, naming the limit",
              s == 501 and b.get("code") == "not_implemented" and "binary" in b.get("error", ""),
              f"{s} {b}")

    s, b, _ = call(base, "GET", f"{home}/executors", key=phone)
    ids = [e["id"] for e in b.get("executors", [])] if isinstance(b, dict) else []
    check("executors: the three of home, without secrets",
          s == 200 and ids == ["claude-agent", "my-phone", "tablet"]
          and "notifications" not in json.dumps(b), f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/executors/my-phone", key=phone, body={
        "display_name": "Teague Phone",
        "capabilities": ["photo:capture", "location:indoor", "location:outdoor"],
        "preferences": {"min_priority": "normal",
                        "quiet_hours": {"enabled": True, "start": "22:00", "end": "07:00"}}})
    check("patch own profile: 200", s == 200 and b.get("executor", {}).get("display_name")
          == "Teague Phone", f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/executors/tablet", key=phone, body={"display_name": "x"})
    check("patch another's profile: 403", s == 403 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/executors/my-phone", key=phone)
    me = b.get("executor", {}) if isinstance(b, dict) else {}
    check("GET own profile: channels and preferences, secrets only as set",
          s == 200 and me.get("notifications") == [{"type": "webhook", "url": "set"}]
          and me.get("preferences", {}).get("min_priority") == "normal"
          and "127.0.0.1" not in json.dumps(b), f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/executors/claude-agent", key=phone)
    other = b.get("executor", {}) if isinstance(b, dict) else {}
    check("GET another member: the public view, no channels or hooks",
          s == 200 and other.get("id") == "claude-agent" and "hooks" not in other
          and "notifications" not in other, f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/executors/nobody-here", key=phone)
    check("GET an unknown member: 404", s == 404, f"{s} {b}")
    s, b, _ = call(base, "PATCH", f"{home}/executors/my-phone", key=phone, body={
        "notifications": [{"type": "webhook", "url": "http://169.254.169.254/latest"}]})
    check("a metadata-address channel: 400", s == 400 and "error" in b, f"{s} {b}")
    s, b, _ = call(base, "GET", f"{home}/capabilities", key=phone)
    check("capabilities: 200, an empty catalog", s == 200 and b == {"capabilities": []}, f"{s} {b}")

    s, b, _ = call(base, "POST", f"{home}/executors/tablet/rotate-key", key=tablet)
    new_tablet = b.get("api_key", "") if isinstance(b, dict) else ""
    check("rotate-key: 200 with a new key", s == 200 and new_tablet.startswith("mess_home_")
          and new_tablet != tablet, f"{s} {b}")
    s, _, _ = call(base, "GET", f"{home}/requests", key=tablet)
    check("the old key stops working: 401", s == 401, f"{s}")
    s, _, _ = call(base, "GET", f"{home}/requests", key=new_tablet)
    check("the new key works: 200", s == 200, f"{s}")
    s, b, _ = call(base, "DELETE", f"{home}/executors/tablet", key=new_tablet)
    check("delete own membership: 200 removed", s == 200 and b.get("removed") is True, f"{s} {b}")
    s, _, _ = call(base, "GET", f"{home}/requests", key=new_tablet)
    check("a removed member's key: 401", s == 401, f"{s}")

    s, before, _ = call(base, "GET", f"{home}/requests/{ref}", key=agent)
    s, list_before, _ = call(base, "GET", f"{home}/requests", key=agent)
    with open(state_file, "w") as f:
        json.dump({"phone": phone, "agent": agent, "office": office, "ref": ref,
                   "refs": refs, "before": before, "list_before": list_before, **idem,
                   "keys": [phone, agent, office, tablet, new_tablet]}, f)


def r2_objects(persist):
    """(key, bytes) of every object in wrangler's local R2 state for bucket mess-exchange."""
    out = []
    for db in glob.glob(os.path.join(persist, "**", "*.sqlite"), recursive=True):
        if "r2" not in db.lower():
            continue
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = con.execute("SELECT key, blob_id FROM _mf_objects").fetchall()
        except sqlite3.Error:
            continue
        blobs = os.path.join(os.path.dirname(os.path.dirname(db)), "mess-exchange", "blobs")
        for key, blob_id in rows:
            path = os.path.join(blobs, blob_id) if blob_id else None
            data = open(path, "rb").read() if path and os.path.exists(path) else None
            out.append((key, data))
    return out


def wrangler_get(persist, config, key):
    """The object through `wrangler r2 object get --local` (wrangler's own reader)."""
    res = subprocess.run(
        ["npx", "--no-install", "wrangler", "r2", "object", "get", f"mess-exchange/{key}",
         "--local", "--persist-to", persist, "--config", config, "--pipe"],
        capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout


def after_restart(base, state_file):
    st = json.load(open(state_file))
    home = "/api/v1/exchanges/home"
    s, after, _ = call(base, "GET", f"{home}/requests/{st['ref']}", key=st["agent"])
    check("after a restart: the same thread, rebuilt", s == 200 and after == st["before"],
          f"{s}")
    s, lst, _ = call(base, "GET", f"{home}/requests", key=st["agent"])
    # The feed's head may have moved on since (notification outcomes are events too).
    head, head_before = lst.pop("pos", None), st["list_before"].pop("pos", None)
    check("after a restart: the same listing", s == 200 and lst == st["list_before"]
          and isinstance(head, int) and head >= head_before, f"{s} {head} {head_before}")
    s, b, h = call(base, "POST", f"{home}/requests", key=st["agent"], body=st["idem_body"],
                   headers={"Idempotency-Key": "create-plants-1"})
    check("after a restart: an Idempotency-Key's answer is replayed",
          s == 201 and b.get("ref") == st["idem_ref"] and h.get("Idempotent-Replayed") == "true",
          f"{s} {b}")
    feed = Feed(base, f"{home}/events", st["agent"], {"Last-Event-ID": str(head)})
    check("after a restart: the feed resumes at the head", feed.status == 200, f"{feed.status}")
    feed.close()
    old = Feed(base, f"{home}/events?since=1", st["agent"])
    check("after a restart: a resume before what the server keeps is 410 position_too_old",
          old.status == 410 and (old.body or {}).get("code") == "position_too_old"
          and (old.body or {}).get("oldest", 0) > 1, f"{old.status}")
    s, b, _ = call(base, "GET", f"{home}/executors", key=st["phone"])
    me = [e for e in b.get("executors", []) if e["id"] == "my-phone"] if s == 200 else []
    check("after a restart: keys work and the profile change stands",
          me and me[0]["display_name"] == "Teague Phone", f"{s} {b}")
    s, _, _ = call(base, "GET", f"{home}/requests", key=st["office"])
    check("after a restart: another exchange's key still gets 403", s == 403, f"{s}")
    s, b, _ = call(base, "PATCH", f"{home}/requests/{st['refs'][1]}", key=st["phone"],
                   body={"status": "claimed"})
    check("after a restart: a claim still works (seq continues)", s == 200, f"{s} {b}")
    import hashlib
    s, t, _ = call(base, "GET", f"{home}/requests/{st['photo_ref']}", key=st["agent"])
    msgs = t.get("thread", {}).get("messages", []) if s == 200 else []
    image = msgs[2]["mess"][1]["response"]["content"][1]["image"] if len(msgs) == 3 else ""
    check("after a restart: the photo comes back from its blob, byte for byte",
          hashlib.sha256(image.encode()).hexdigest() == st["photo_uri_sha"], f"{s}")


def r2(state_file, persist, config):
    st = json.load(open(state_file))
    objects = r2_objects(persist)
    keys = sorted(k for k, _ in objects)
    check("R2 holds objects (wrangler's local state)", len(keys) > 0, f"{persist}")
    event_re = re.compile(
        r"events/exchange=(home|office)/\d{4}/\d{2}/\d{2}/"
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.jsonl")
    member_re = re.compile(r"executors/exchange=(home|office)/[A-Za-z0-9._-]+\.json")
    answer_re = re.compile(r"answers/exchange=(home|office)/[0-9a-f]{64}\.json")
    blob_re = re.compile(r"blobs/exchange=(home|office)/[0-9a-f]{64}")
    stray = [k for k in keys if not (event_re.fullmatch(k) or member_re.fullmatch(k)
                                     or answer_re.fullmatch(k) or blob_re.fullmatch(k))]
    check("every R2 key is in the seed's layout (and answers/, blobs/)",
          not stray, f"{stray}")
    blobs = [k for k in keys if blob_re.fullmatch(k)]
    check("the photo is kept once in R2, under its SHA-256",
          blobs == [f"blobs/exchange=home/{st['photo_sha']}"], f"{blobs}")
    answers = [k for k in keys if answer_re.fullmatch(k)]
    check("Idempotency-Key answers are stored in R2", len(answers) >= 3, f"{answers}")
    members = sorted(k for k in keys if member_re.fullmatch(k))
    check("member records: one per current member (tablet removed)", members == [
        "executors/exchange=home/claude-agent.json", "executors/exchange=home/my-phone.json",
        "executors/exchange=office/office-bot.json"], f"{members}")
    lines = []
    for k, data in objects:
        if event_re.fullmatch(k) and data is not None:
            lines += [(k, l) for l in data.decode().splitlines() if l.strip()]
    events = []
    bad = []
    for k, l in lines:
        try:
            e = json.loads(l)
            if not (set(e) >= {"event_id", "ts", "exchange_id", "thread_ref", "event_type",
                               "actor_id", "payload", "seq"}
                    and f"exchange={e['exchange_id']}/" in k
                    and k.split("/")[2:5] == e["ts"][:10].split("-")):
                bad.append(l)
            events.append(e)
        except (ValueError, KeyError):
            bad.append(l)
    check("every event line parses, with its exchange and UTC day in its key",
          lines and not bad, f"{len(lines)} lines, bad: {bad[:2]}")
    thread = [e for e in events if e.get("thread_ref") == st["ref"]]
    types = [e["event_type"] for e in sorted(thread, key=lambda e: e["seq"])
             if not e["event_type"].startswith("notification_")]
    check("the thread's events: created, claimed (once), completed",
          types == ["thread_created", "status_changed", "message_added",
                    "status_changed", "message_added"], f"{types}")
    claims = [e for e in thread if e["event_type"] == "status_changed"
              and e["payload"].get("new_status") == "claimed"]
    check("exactly one claim is stored", len(claims) == 1, f"{len(claims)}")
    reg = sorted(e["payload"]["executor_id"] for e in events
                 if e["event_type"] == "executor_registered")
    check("registrations are events", reg == ["claude-agent", "my-phone", "office-bot", "tablet"],
          f"{reg}")
    types_all = {e["event_type"] for e in events}
    check("key rotation and removal are events",
          {"executor_key_rotated", "executor_removed", "executor_updated"} <= types_all,
          f"{types_all}")
    outcomes = [e for e in events if e["event_type"].startswith("notification_")]
    check("notification outcomes are recorded, without URLs",
          outcomes and all("url" not in json.dumps(e["payload"]) and "127.0.0.1" not in
                           json.dumps(e) for e in outcomes), f"{len(outcomes)}")
    hooked = [e for e in outcomes if e.get("thread_ref") == st["ref"]
              and e["payload"].get("channel") == "hook"]
    check("the requestor's on_request_created hook was sent, its outcome recorded",
          len(hooked) == 1 and hooked[0]["payload"].get("executor_id") == "claude-agent"
          and hooked[0]["payload"].get("trigger") == "thread_created"
          and hooked[0]["event_type"] == "notification_failed", f"{hooked}")
    logged = b"".join(d or b"" for k, d in objects if event_re.fullmatch(k))
    check("no photo bytes in the event log: a reference stands for them",
          st["photo_b64_head"].encode() not in logged
          and f"mess-blob:sha256:{st['photo_sha']}".encode() in logged)
    everything = b"".join(d or b"" for _, d in objects)
    check("no API key in plaintext in R2",
          not any(k.encode() in everything for k in st["keys"] if k))
    member_key = "executors/exchange=home/my-phone.json"
    rc, out = wrangler_get(persist, config, member_key)
    try:
        rec = json.loads(out)
    except ValueError:
        rec = {}
    check("wrangler r2 object get --local reads a member record",
          rc == 0 and rec.get("executor_id") == "my-phone" and "key_hash" in rec
          and rec.get("display_name") == "Teague Phone", f"rc={rc} {out[:200]!r}")


def main():
    mode = sys.argv[1]
    if mode == "api":
        api(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "after-restart":
        after_restart(sys.argv[2], sys.argv[3])
    elif mode == "r2":
        r2(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")
    print(f"{mode}: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
