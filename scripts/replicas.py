#!/usr/bin/env python3
"""Replicas, proved black-box: several mess-exchange processes on one S3 bucket (moto), each
exchange owned by one of them at a time through a lease, any of them answering any request.

    replicas.py S3_ENDPOINT WORK_DIR

What a run proves, every process on loopback (scripts/test-replicas.sh starts moto and
runs it):
1. Three replicas (`ADVERTISE_URL` each, `LEASE_PERIOD=PT2S`, one bucket) get ready, and a
   member registered through one replica is known to all of them.
2. Claim race: 50 times, 20 members claim a new request at once through the three
   replicas; exactly one wins, the others get 409 `already_claimed`, and every replica
   shows the winner as the assignee.
3. History: a load generator (creates, contested claims, questions and answers, progress,
   releases, cancels, completions) runs through every replica for the rest of the run, and
   on after the faults until it has made 10,000 writes, recording each one and its answer.
   After each fault and at the end: every
   acknowledged write is there (through the API, and in the bucket's log as replay reads
   it), no refused claim took effect, no claim was won twice, and every thread's status
   history is a path the transition table allows (crates/mess-core/src/rules.rs).
4. Faults, each while the load runs, each reported as `failover: <scenario> <seconds>s`
   (until the exchange answers writes again): SIGKILL of the busy exchange's owner and a
   restart; SIGSTOP of the owner for three lease periods (whatever it answers after
   SIGCONT must hold: a 2xx for a write that is then missing is a failure); its link to
   S3 cut by a fault-injecting TCP proxy, refusing and then stalling (held, forwarded
   late); a rolling restart of all three with SIGTERM (503s seen by clients counted).
5. Any 5xx but a 503 with `Retry-After` is a failure; a 503 is retried, never an
   acknowledgement.

`MESS_REPLICAS=1` runs the same scenarios against one process without `ADVERTISE_URL`
(the single-process binary): the replica-only checks are skipped and a fault is simply
downtime. Settings (environment): `MESS_BIN` (default target/debug/mess-exchange),
`MESS_REPLICAS` (3), `MESS_REPLICAS_ROUNDS` (50), `MESS_REPLICAS_CLAIMERS` (20),
`MESS_REPLICAS_RATE` (load writes per second at most, 140), `MESS_REPLICAS_WORKERS` (16),
`MESS_REPLICAS_HISTORY` (the writes the history must hold, 10000: the load runs on after
the faults until it has them).

Prints one line per check, the measurements, and `replicas: N passed, M failed`; exits
non-zero on a failure. Standard library only.
"""

import asyncio
import datetime
import hashlib
import hmac
import http.client
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MESS_BIN") or os.path.join(ROOT, "target", "debug", "mess-exchange")
REPLICAS = int(os.environ.get("MESS_REPLICAS", "3"))
ROUNDS = int(os.environ.get("MESS_REPLICAS_ROUNDS", "50"))
CLAIMERS = int(os.environ.get("MESS_REPLICAS_CLAIMERS", "20"))
RATE = float(os.environ.get("MESS_REPLICAS_RATE", "140"))
WORKERS = int(os.environ.get("MESS_REPLICAS_WORKERS", "16"))
# The history checked: at least this many load writes (the load runs on after the faults
# until it has them, for at most HISTORY_GRACE seconds more).
HISTORY = int(os.environ.get("MESS_REPLICAS_HISTORY", "10000"))
HISTORY_GRACE = 90.0
LEASE = 2.0  # seconds: LEASE_PERIOD=PT2S
REPLICA_MODE = REPLICAS > 1

RACE_EXCHANGE, LOAD_EXCHANGE = "claims", "load"
LOAD_EXECUTORS = [f"runner-{i}" for i in range(1, 7)]
LOAD_REQUESTORS = ["agent-1", "agent-2"]
TOKEN = re.compile(r"op-[a-z0-9]+-\d+")

WRITE_TIMEOUT = 20.0  # longer than a SIGSTOP: a stopped owner's late answers are heard
WRITE_DEADLINE = 15.0  # how long a client keeps retrying 503s and refused connections
READ_TIMEOUT = 10.0
PROBE_EVERY, PROBE_TIMEOUT = 0.1, 3.0
FAILOVER_BOUND = 30.0  # a fault the exchange does not recover from within this fails

PASSED = 0
FAILED = 0
MEASURES = []


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {name}", flush=True)
    else:
        FAILED += 1
        print(f"FAIL {name} {detail}", flush=True)


def measure(line):
    MEASURES.append(line)
    print(line, flush=True)


def info(line):
    print(f"     {line}", flush=True)


def utc():
    """Now, as the replicas' logs print it, to find a fault in them."""
    return datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S.%f")[:-3]


def at_once(n, fn):
    """fn(0) ... fn(n - 1), each in its own thread, released together; their results."""
    results = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        gate.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# HTTP: one call, and the client's write policy (retry 503s and refused connections)
# ---------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int
    body: object
    headers: http.client.HTTPMessage

    @property
    def owner(self):
        return self.headers.get("X-Mess-Replica")


def call(base, method, path, key=None, body=None, timeout=READ_TIMEOUT):
    """One request on a fresh connection; raises OSError or HTTPException when there is no
    answer (refused, reset, timed out)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(method, path, body=data, headers=headers)
        res = conn.getresponse()
        raw = res.read()
    finally:
        conn.close()
    parsed = raw
    if res.headers.get("Content-Type", "").startswith("application/json"):
        try:
            parsed = json.loads(raw or b"null")
        except ValueError:
            pass  # kept as bytes: a check that expects JSON says so
    return Answer(res.status, parsed, res.headers)


class Stats:
    """What clients saw, with times, so a fault's window can be counted afterwards."""

    def __init__(self):
        self.lock = threading.Lock()
        self.unavailable = []  # times of 503 answers with Retry-After
        self.no_answer = []  # times of refused/reset/timed-out requests
        self.bad_5xx = []  # (what, status, body): every 5xx but a 503 with Retry-After
        self.bad_503_body = []  # 503s without a JSON error
        self.scoped = 0  # exchange-scoped answers (not 503) seen
        self.unnamed = []  # of them, those without X-Mess-Replica naming a replica
        self.writes = self.reads = 0
        self.timeouts_408 = 0

    def answer(self, method, path, ans, replica_urls):
        what = f"{method} {path}"
        with self.lock:
            if method == "GET":
                self.reads += 1
            else:
                self.writes += 1
            if ans.status == 503 and ans.headers.get("Retry-After"):
                self.unavailable.append(time.monotonic())
                if not (isinstance(ans.body, dict) and "error" in ans.body):
                    self.bad_503_body.append((what, ans.body))
            elif ans.status >= 500:
                self.bad_5xx.append((what, ans.status, ans.body))
            if "/exchanges/" in what and ans.status != 503:
                self.scoped += 1
                if ans.owner not in replica_urls:
                    self.unnamed.append((what, ans.status, ans.owner))

    def lost(self):
        with self.lock:
            self.no_answer.append(time.monotonic())

    def count(self, times, start, end):
        with self.lock:
            return sum(1 for t in times if start <= t <= end)


REFUSED, LOST = "refused", "lost"  # how an attempt without an answer ended


@dataclass
class Outcome:
    """A write's end, after retries: acknowledged (2xx), refused (4xx) or neither."""
    answer: Answer | None
    ambiguous: bool  # an attempt may have reached storage without an acknowledgement
    via: int | None = None  # the replica the final answer came from
    sent: float = 0.0
    done: float = 0.0

    @property
    def acked(self):
        return self.answer is not None and 200 <= self.answer.status < 300

    @property
    def refused(self):
        return self.answer is not None and 400 <= self.answer.status < 500


class Client:
    """How every scenario writes: round-robin over the replicas as a plain load balancer
    would, a refused connection tried on the next one, a 503 with Retry-After retried
    (honouring it up to 0.25 s, so a failover is timed to a few tenths), both until
    WRITE_DEADLINE. Anything else is final."""

    def __init__(self, cluster, stats, start=0):
        self.cluster, self.stats = cluster, stats
        self.turn = start

    def next_replica(self):
        self.turn += 1
        return self.turn % len(self.cluster.replicas)

    def read(self, path, key, via=None):
        """A GET retried like a write; returns the last Answer or None."""
        outcome = self.send("GET", path, key, None, via=via, timeout=READ_TIMEOUT)
        return outcome.answer

    def send(self, method, path, key, body, via=None, timeout=WRITE_TIMEOUT,
             deadline=WRITE_DEADLINE):
        sent = time.monotonic()
        ambiguous = False
        while True:
            index = self.next_replica() if via is None else via
            ans = self.attempt(index, method, path, key, body, timeout)
            if isinstance(ans, Answer) and not (ans.status == 503
                                                and ans.headers.get("Retry-After")):
                return Outcome(ans, ambiguous, index, sent, time.monotonic())
            # A 503 may have reached storage, as may a request whose answer was lost.
            ambiguous = ambiguous or (method != "GET" and ans is not REFUSED)
            if time.monotonic() - sent > deadline:
                return Outcome(ans if isinstance(ans, Answer) else None, ambiguous, index,
                               sent, time.monotonic())
            time.sleep(0.25 if isinstance(ans, Answer) else 0.1)

    def attempt(self, index, method, path, key, body, timeout):
        """One try: an Answer, REFUSED (no connection: nothing sent) or LOST (no answer)."""
        try:
            ans = call(self.cluster.replicas[index].url, method, path, key, body, timeout)
        except ConnectionRefusedError:
            self.stats.lost()
            return REFUSED
        except (OSError, http.client.HTTPException):
            self.stats.lost()
            return LOST
        if ans.status == 408:
            # actix's own timer on reading a request, run out while the process was
            # stopped: no answer from the exchange (and no JSON), counted apart.
            self.stats.lost()
            with self.stats.lock:
                self.stats.timeouts_408 += 1
            return LOST
        self.stats.answer(method, path, ans, self.cluster.urls)
        return ans


# ---------------------------------------------------------------------------------------
# S3: the bucket read directly (SigV4-signed requests, standard library only)
# ---------------------------------------------------------------------------------------

class Bucket:
    def __init__(self, endpoint, name, access="test", secret="test", region="us-east-1"):
        u = urllib.parse.urlsplit(endpoint)
        self.host, self.port, self.name = u.hostname, u.port, name
        self.access, self.secret, self.region = access, secret, region

    def _request(self, method, key="", query=None):
        query = query or {}
        amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        path = f"/{self.name}" + (f"/{urllib.parse.quote(key, safe='/~')}" if key else "")
        qs = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                      for k, v in sorted(query.items()))
        payload = hashlib.sha256(b"").hexdigest()
        headers = {"host": f"{self.host}:{self.port}", "x-amz-content-sha256": payload,
                   "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, qs,
                               "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                               signed, payload])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        k = f"AWS4{self.secret}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path + (f"?{qs}" if qs else ""), headers=headers)
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            conn.close()

    def create(self):
        status, raw = self._request("PUT")
        if status != 200:
            raise RuntimeError(f"creating bucket {self.name}: {status} {raw[:200]!r}")

    def keys(self, prefix):
        keys, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, raw = self._request("GET", query=query)
            if status != 200:
                raise RuntimeError(f"listing {prefix}: {status} {raw[:200]!r}")
            # Tags as `{namespace}Key`, or bare: the last part of the tag either way.
            elements = [(e.tag.rsplit("}", 1)[-1], e) for e in ET.fromstring(raw).iter()]
            keys += [e.text for tag, e in elements if tag == "Key"]
            more = {tag: e.text for tag, e in elements if tag in ("IsTruncated",
                                                                  "NextContinuationToken")}
            if more.get("IsTruncated") != "true" or not more.get("NextContinuationToken"):
                return keys
            token = more["NextContinuationToken"]

    def get(self, key):
        """The object's bytes, or None when it is gone (a segment just moved to fenced/)."""
        status, raw = self._request("GET", key)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"reading {key}: {status}")
        return raw


# ---------------------------------------------------------------------------------------
# The fault-injecting TCP proxy between a replica and S3
# ---------------------------------------------------------------------------------------

class ProxyLoop:
    """One asyncio loop, in a thread, for every proxy."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)


class FaultProxy:
    """Forwards a port to S3, or cuts the link: `refuse` stops listening and resets every
    open connection (S3 down); `stall` accepts and holds every connection, forwarding
    nothing, and `restore` then lets what was held through (a partition that heals: a PUT
    sent before it lands after it); `restore` also listens again after `refuse`."""

    def __init__(self, loop, upstream):
        u = urllib.parse.urlsplit(upstream)
        self.loop, self.upstream = loop, (u.hostname, u.port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.links = set()
        loop.run(self._init())

    async def _init(self):
        self.flowing = asyncio.Event()
        self.flowing.set()
        await self._listen()

    async def _listen(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def _accept(self, reader, writer):
        self.links.add(writer)
        try:
            await self.flowing.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            self.links.discard(writer)
            return
        self.links.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.links.difference_update({writer, up_writer})

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _refuse(self):
        self.server.close()
        for w in list(self.links):
            w.transport.abort()
        self.links.clear()
        await self.server.wait_closed()
        self.server = None

    async def _stall(self):
        self.flowing.clear()

    async def _restore(self):
        if self.server is None:
            await self._listen()
        self.flowing.set()

    def refuse(self):
        self.loop.run(self._refuse())

    def stall(self):
        self.loop.run(self._stall())

    def restore(self):
        self.loop.run(self._restore())


# ---------------------------------------------------------------------------------------
# The replicas
# ---------------------------------------------------------------------------------------

class Replica:
    def __init__(self, index, work, bucket, proxy):
        self.index, self.work, self.bucket, self.proxy = index, work, bucket, proxy
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("ADVERTISE_URL", "REGISTRATION_TOKEN", "REGISTRATION_TOKENS")}
        env.update({
            "PORT": str(self.port), "BIND_ADDRESS": "127.0.0.1",
            "STORAGE_TYPE": "s3", "S3_ENDPOINT": self.proxy.url, "S3_BUCKET": self.bucket,
            "S3_ACCESS_KEY": "test", "S3_SECRET_KEY": "test",
            "LEASE_PERIOD": "PT2S",
            # Every client is 127.0.0.1: per-IP limits would only get in the way.
            "RATE_LIMIT_REGISTER_PER_MIN": "0", "RATE_LIMIT_AUTH_FAILURES_PER_MIN": "0",
        })
        env.setdefault("ACCESS_LOG", "false")
        if REPLICA_MODE:
            env["ADVERTISE_URL"] = self.url
        return env

    def start(self):
        self.starts += 1
        with open(os.path.join(self.work, f"replica-{self.index}.log"), "ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen([BIN], env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with open(os.path.join(self.work, f"replica-{self.index}.pid"), "w") as f:
            f.write(str(self.proc.pid))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ready(self, timeout=90):
        """Waits for /readyz 200; the seconds it took, or None."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.alive():
                return None
            try:
                if call(self.url, "GET", "/readyz", timeout=2).status == 200:
                    return time.monotonic() - start
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        return None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def terminate(self, timeout=40):
        """SIGTERM and wait; the seconds it took to exit, or None (then SIGKILL)."""
        start = time.monotonic()
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return time.monotonic() - start
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class Cluster:
    def __init__(self, work, endpoint, bucket, loop):
        self.replicas = [Replica(i, work, bucket, FaultProxy(loop, endpoint))
                         for i in range(REPLICAS)]
        self.urls = {r.url for r in self.replicas}
        self.faulted = set()  # replicas the prober keeps away from

    def index_of(self, url):
        return next((r.index for r in self.replicas if r.url == url), None)

    def healthy(self):
        ok = [r.index for r in self.replicas if r.index not in self.faulted]
        return ok or [r.index for r in self.replicas]

    def stop_all(self):
        for r in self.replicas:
            if r.alive():
                r.terminate(timeout=20)


# ---------------------------------------------------------------------------------------
# What was written: the ledger, and the checker that holds the exchange to it
# ---------------------------------------------------------------------------------------

@dataclass
class Op:
    """One write the load made, and how it ended."""
    token: str  # op-..., carried in the write's text so the history shows it
    kind: str  # create | message | status
    actor: str
    ref: str | None = None
    to: str | None = None  # the status sent
    outcome: Outcome | None = None


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.counter = 0

    def token(self, who):
        with self.lock:
            self.counter += 1
            return f"op-{who}-{self.counter}"

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def snapshot(self):
        with self.lock:
            return list(self.ops)


ACTIVE = {"claimed", "in_progress", "waiting", "held", "retrying", "needs_input",
          "needs_confirmation"}
ENDINGS = {"completed", "partial", "failed", "declined", "delegated"}
# (from, to, who): the rows of crates/mess-core/src/rules.rs, then the exchange's own
# releases protocol.md names (a claim past its time limit, a member who left).
TRANSITIONS = [
    ({"pending"}, {"claimed"}, "member"),
    ({"pending"}, {"cancelled", "superseded"}, "requestor"),
    ({"pending"}, {"expired"}, "exchange"),
    (ACTIVE, ACTIVE, "assignee"),
    (ACTIVE, ENDINGS, "assignee"),
    (ACTIVE, {"pending"}, "assignee"),
    (ACTIVE, {"cancelled", "superseded"}, "requestor"),
    ({"partial"}, {"completed"}, "assignee"),
    ({"waiting", "held"}, {"expired"}, "exchange"),
    (ACTIVE, {"pending"}, "exchange"),
]


def allowed(frm, to, actor, requestor, assignee):
    roles = {"member": actor != "exchange", "requestor": actor == requestor,
             "assignee": actor == assignee and actor is not None,
             "exchange": actor == "exchange"}
    return frm != to and any(frm in f and to in t and roles[who] for f, t, who in TRANSITIONS)


@dataclass
class Step:
    actor: str
    to: str  # the status the thread moved to ("revision_requested" for a revision)
    token: str | None  # the status block's `message`


def walk(requestor, steps):
    """Follows a thread's status steps from `pending`; returns (status, assignee, problems)."""
    status, assignee, problems = "pending", None, []
    for s in steps:
        to = s.to
        if to == "revision_requested":
            ok = status in ("completed", "partial") and s.actor == requestor
            to = "in_progress"
        elif to == "declined" and status == "pending" and s.actor not in (requestor, "exchange"):
            continue  # passing on an offer: a message, no move
        else:
            ok = allowed(status, to, s.actor, requestor, assignee)
        if not ok:
            problems.append(f"{status}->{to} by {s.actor} (assignee {assignee})")
        if to == "claimed" and status == "pending":
            assignee = s.actor
        elif to == "pending":
            assignee = None
        status = to
    return status, assignee, problems


def steps_of_thread(thread):
    """A thread's status steps from its messages: a message whose first block is a status
    block records one step per status block (one, or a path)."""
    steps = []
    for m in thread.get("messages", [])[1:]:
        blocks = [b["status"] for b in m.get("mess", []) if isinstance(b, dict) and "status" in b]
        first = (m.get("mess") or [{}])[0]
        if blocks and isinstance(first, dict) and "status" in first:
            steps += [Step(m.get("from"), b.get("code"), b.get("message")) for b in blocks]
    return steps


def tokens_of_thread(thread):
    """Every op token in the thread, with the member whose message holds it."""
    found = {}
    for m in thread.get("messages", []):
        for t in TOKEN.findall(json.dumps(m.get("mess"))):
            found.setdefault(t, m.get("from"))
    return found


def judge_thread(thread, ops):
    """One thread against the writes made to it: (lost, wrong). Lost: acknowledged writes
    not in it (by their member, a status change as sent). Wrong: a history that is not a
    path the table allows or does not end where the thread says it is, and writes answered
    4xx (never retried) that took effect."""
    ref = thread.get("ref")
    steps = steps_of_thread(thread)
    status, assignee, bad = walk(thread.get("requestor_id"), steps)
    wrong = [f"{ref}: not allowed: {b}" for b in bad]
    if status != thread.get("status"):
        wrong.append(f"{ref}: history ends {status}, thread says {thread.get('status')}")
    if (status in ACTIVE or status == "pending") and assignee != thread.get("executor_id"):
        wrong.append(f"{ref}: assignee {assignee}, thread says {thread.get('executor_id')}")
    tokens = tokens_of_thread(thread)
    moved = {s.token: (s.actor, s.to) for s in steps if s.token}
    lost = []
    for op in ops:
        if op.outcome.acked:
            if op.kind == "status" and moved.get(op.token) != (op.actor, op.to):
                lost.append(f"{ref}: {op.actor} -> {op.to} ({op.token})")
            elif op.kind != "status" and tokens.get(op.token) != op.actor:
                lost.append(f"{ref}: {op.kind} {op.token} by {op.actor}")
        elif op.outcome.refused and not op.outcome.ambiguous and op.token in tokens:
            wrong.append(f"{ref}: {op.kind} {op.token} answered {op.outcome.answer.status} "
                         "but took effect")
    return lost, wrong


def list_threads(client, path, key, via=None):
    """Every thread of an exchange, by ref, through the list pages; None if a page fails."""
    threads, cursor = {}, None
    for _ in range(100):
        q = "?limit=500" + (f"&cursor={cursor}" if cursor else "")
        ans = client.read(f"{path}/requests{q}", key, via=via)
        if ans is None or ans.status != 200:
            return None
        threads.update({t["ref"]: t for t in ans.body["threads"]})
        cursor = ans.body.get("next_cursor")
        if not cursor:
            return threads
    return threads


class Log:
    """An exchange's event log read straight from the bucket, as replay reads it: every
    segment under events/ that its epoch's seal counts (a segment written under a lease
    names its epoch and batch in its uuid, crates/mess-storage/src/lease.rs); fenced/ is
    not read. A segment never changes once written, so each is fetched once."""

    def __init__(self, bucket, exchange):
        self.bucket, self.exchange = bucket, exchange
        self.segments = {}  # key -> its events

    def seals(self):
        seals = {}
        for key in self.bucket.keys(f"leases/exchange={self.exchange}/"):
            m = re.search(r"seal-(\d+)\.json$", key)
            raw = self.bucket.get(key) if m else None
            if raw is not None:
                seal = json.loads(raw)
                seals[int(m.group(1))] = (seal.get("through", 0), set(seal.get("missing", [])))
        return seals

    @staticmethod
    def tag(key):
        """(epoch, batch) of a segment written under a lease, else None."""
        name = key.rsplit("/", 1)[-1].removesuffix(".jsonl")
        raw = bytes.fromhex(name.replace("-", "")) if re.fullmatch(r"[0-9a-f-]{36}", name) else b""
        if len(raw) != 16 or raw[6] >> 4 != 8:
            return None
        return int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[9:13], "big")

    @staticmethod
    def sealed_counts(seals, epoch, batch):
        through, missing = seals.get(epoch, (None, ()))
        return through is None or (1 <= batch <= through and batch not in missing)

    @classmethod
    def counts(cls, key, seals):
        tag = cls.tag(key)
        return tag is None or cls.sealed_counts(seals, *tag)

    def runs(self):
        """The merged runs under merged/ that replay reads in place of their segments (the
        epoch unsealed, or its seal counting every batch): (how many, the ones whose lines
        are not exactly those of the segments they stand for). Call after read()."""
        seals = self.seals()
        by_tag = {}
        for key in self.segments:
            tag = self.tag(key)
            if tag:
                by_tag[(key.rsplit("/", 1)[0], *tag)] = key
        used, wrong = 0, []
        for run in self.bucket.keys(f"merged/exchange={self.exchange}/"):
            m = re.search(r"^merged/(.+)/(\d{10})-(\d{10})-(\d{10})\.jsonl$", run)
            if not m:
                wrong.append(f"{run}: not a run's name")
                continue
            day, epoch, first, last = f"events/{m.group(1)}", *map(int, m.group(2, 3, 4))
            batches = range(first, last + 1)
            if not all(self.sealed_counts(seals, epoch, b) for b in batches):
                continue
            used += 1
            raw = self.bucket.get(run) or b""
            got = sorted(json.loads(line)["event_id"] for line in raw.decode().splitlines()
                         if line.strip())
            keys = [by_tag.get((day, epoch, b)) for b in batches]
            if None in keys:
                wrong.append(f"{run}: a batch it stands for is not under events/")
                continue
            want = sorted(e["event_id"] for k in keys for e in self.segments[k])
            if got != want:
                wrong.append(f"{run}: {len(got)} events, its segments hold {len(want)}")
        return used, wrong

    def read(self):
        """(the events that count, the keys of segments under events/ that do not)."""
        seals = self.seals()
        keys = self.bucket.keys(f"events/exchange={self.exchange}/")
        new = [k for k in keys if k not in self.segments]
        with ThreadPoolExecutor(8) as pool:
            for key, raw in zip(new, pool.map(self.bucket.get, new), strict=True):
                if raw is not None:
                    self.segments[key] = [json.loads(line) for line in raw.decode().splitlines()
                                          if line.strip()]
        keys = [k for k in keys if k in self.segments]
        counted = [k for k in keys if self.counts(k, seals)]
        return ([e for k in counted for e in self.segments[k]],
                [k for k in keys if not self.counts(k, seals)])


def judge_log(events, ops, at_rest):
    """The log against itself and the ledger: every acknowledged write in it, no (thread,
    seq) and no pos used twice; at rest also each thread's seqs without a hole and its
    status changes chained and allowed (while writes run, a later PUT may land first)."""
    problems = []
    poses = [e["pos"] for e in events if "pos" in e]
    if len(poses) != len(set(poses)):
        problems.append(f"{len(poses) - len(set(poses))} positions (pos) used twice")
    by_thread = {}
    for e in events:
        if e.get("thread_ref") and e.get("seq", 0) > 0:
            by_thread.setdefault(e["thread_ref"], []).append(e)
    created, tokens = set(), set()
    for ref, evs in by_thread.items():
        evs.sort(key=lambda e: e["seq"])
        seqs = [e["seq"] for e in evs]
        if len(seqs) != len(set(seqs)) or (at_rest and seqs != list(range(1, len(seqs) + 1))):
            problems.append(f"{ref}: seqs {seqs}")
        requestor, steps, status = None, [], "pending"
        for e in evs:
            p = e.get("payload", {})
            if e["event_type"] == "thread_created":
                created.add(ref)
                requestor = p.get("requestor_id")
            elif e["event_type"] == "status_changed":
                if at_rest and p.get("old_status") != status:
                    problems.append(f"{ref}: seq {e['seq']} moves from {p.get('old_status')}, "
                                    f"the thread was {status}")
                status = p.get("new_status")
                steps.append(Step(e.get("actor_id"), status, None))
            tokens.update(TOKEN.findall(json.dumps(p)))
        if at_rest:
            problems += [f"{ref}: not allowed: {b}" for b in walk(requestor, steps)[2]]
    lost = [o.token for o in ops if o.outcome.acked and (
        o.token not in tokens or (o.kind == "create" and o.ref not in created))]
    if lost:
        problems.append(f"acknowledged writes not in the log: {lost[:5]} ({len(lost)})")
    return problems


def verify(run, label, at_rest=False):
    """The acknowledged-writes checks, after a fault and at the end: through the API (read
    through the replicas in turn), then in the bucket's log."""
    ops = [o for o in run.ledger.snapshot() if o.outcome is not None]
    client = Client(run.cluster, run.stats, start=random.randrange(REPLICAS))
    path, key = f"/api/v1/exchanges/{LOAD_EXCHANGE}", run.keys[LOAD_EXCHANGE]["agent-1"]
    listed = list_threads(client, path, key)
    if listed is None:
        check(f"{label}: the exchange lists its threads", False, "no 200 for a list page")
        return []
    by_ref = {}
    for o in ops:
        if o.ref:
            by_ref.setdefault(o.ref, []).append(o)
    # Every thread that changed after its creation (or any of the load touched) is read
    # whole, through the replicas in turn.
    refs = sorted({r for r, t in listed.items() if t.get("version", 1) > 1}
                  | {r for r, os_ in by_ref.items() if any(o.kind != "create" for o in os_)})
    # A thread updated while the pages are read can move past the cursor: an acknowledged
    # create the list did not show is looked up on its own.
    unlisted = sorted({o.ref for o in ops if o.kind == "create" and o.outcome.acked
                       and o.ref not in listed})
    lost, wrong, unreadable = [], [], []

    def read_thread(ref):
        ans = Client(run.cluster, run.stats, start=hash(ref)).read(f"{path}/requests/{ref}", key)
        return ref, ans.body["thread"] if ans and ans.status == 200 else None

    with ThreadPoolExecutor(6) as pool:
        for ref, thread in pool.map(read_thread, refs + [r for r in unlisted if r not in refs]):
            if thread is None:
                (lost if ref in unlisted else unreadable).append(f"{ref}: no thread")
                continue
            thread_lost, thread_wrong = judge_thread(thread, by_ref.get(ref, []))
            lost += thread_lost
            wrong += thread_wrong
    acked = sum(1 for o in ops if o.outcome.acked)
    check(f"{label}: every acknowledged write is there ({acked} writes, {len(listed)} threads)",
          not lost, f"{len(lost)} lost: {lost[:5]}")
    check(f"{label}: every history is a path the table allows; no claim won twice, "
          f"no refused write took effect ({len(refs)} threads read whole)",
          not wrong and not unreadable, f"{wrong[:5]} unreadable: {unreadable[:5]}")
    started = time.monotonic()
    events, uncounted = run.log.read()
    problems = judge_log(events, ops, at_rest)
    rest = ", each thread's seqs in order and its moves allowed" if at_rest else ""
    check(f"{label}: the bucket's log as replay reads it ({len(events)} events) holds every "
          f"acknowledged write, no thread's seq nor any pos twice{rest}", not problems,
          f"{problems[:5]}")
    info(f"{label}: bucket read in {time.monotonic() - started:.1f}s; {len(uncounted)} "
         "segments under events/ that no seal counts")
    return uncounted


# ---------------------------------------------------------------------------------------
# The load: members working requests through every replica
# ---------------------------------------------------------------------------------------

class Pacer:
    """Holds the load to `rate` writes a second, all workers together."""

    def __init__(self, rate):
        self.lock, self.gap, self.next = threading.Lock(), 1.0 / rate, time.monotonic()

    def wait(self):
        with self.lock:
            now = time.monotonic()
            self.next = max(self.next + self.gap, now)
            delay = self.next - now
        time.sleep(delay)


class Worker(threading.Thread):
    """Works requests start to end: create, a contested claim, a question and its answer,
    progress, then mostly completion (sometimes partial first, a release and another claim,
    or the requestor cancelling). A thread whose write ended ambiguous (no answer, or 503
    to the end) is left as it is. A move the acknowledged history allows, refused with a 4xx
    while every earlier write on the thread was certain, is a failure (lost state)."""

    def __init__(self, run, wid):
        super().__init__(daemon=True)
        self.run_, self.wid = run, wid
        self.rng = random.Random(wid)
        self.client = Client(run.cluster, run.stats, start=wid)
        self.path = f"/api/v1/exchanges/{LOAD_EXCHANGE}"
        self.keys = run.keys[LOAD_EXCHANGE]

    def run(self):
        while not self.run_.stop.is_set():
            try:
                self.one_request()
            except Exception as e:  # a bug here must show, not silently end the load
                self.run_.load_errors.append(f"worker {self.wid}: {e!r}")
                time.sleep(0.5)

    def write(self, kind, actor, ref=None, to=None, client=None):
        """One write of the load, its token in its text, recorded with its outcome: a
        create, a message (a requestor's reply, an executor's question) or a status."""
        self.run_.pacer.wait()
        op = Op(self.run_.ledger.token(f"w{self.wid}"), kind, actor, ref, to)
        if kind == "create":
            method, path, body = "POST", "/requests", {"intent": f"load {op.token}"}
        else:
            block = "reply" if actor in LOAD_REQUESTORS else "query"
            body = ({"status": to, "message": op.token} if kind == "status"
                    else {"mess": [{block: {"content": [op.token]}}]})
            method, path = "PATCH", f"/requests/{ref}"
        op.outcome = (client or self.client).send(method, self.path + path, self.keys[actor], body)
        if kind == "create" and op.outcome.acked:
            op.ref = op.outcome.answer.body.get("ref")
        self.run_.ledger.add(op)
        return op

    def expect(self, op, certain):
        """A definite 4xx on a move the acknowledged history allows means lost state."""
        if certain and op.outcome.refused and not op.outcome.ambiguous:
            self.run_.unexpected.append(f"{op.ref}: {op.actor} -> {op.to or op.kind}: "
                                        f"{op.outcome.answer.status} {op.outcome.answer.body}")
        return op.outcome.acked

    def claim(self, ref, certain):
        """Two or three members claim the pending request at once through different
        replicas; the winner, or None. Two winners are a failure, and so is nobody winning
        when the acknowledged history says it is pending."""
        claimers = self.rng.sample(LOAD_EXECUTORS, self.rng.choice([2, 3]))
        ops = at_once(len(claimers), lambda i: self.write(
            "status", claimers[i], ref, "claimed",
            client=Client(self.run_.cluster, self.run_.stats, start=self.wid + i)))
        self.run_.contested += 1
        winners = [o for o in ops if o.outcome.acked]
        if len(winners) > 1:
            self.run_.double_claims.append((ref, [o.actor for o in winners]))
        if not winners and all(not o.outcome.ambiguous for o in ops):
            self.expect(ops[0], certain)
        return winners[0].actor if len(winners) == 1 else None

    def one_request(self):
        requestor = self.rng.choice(LOAD_REQUESTORS)
        created = self.write("create", requestor)
        if not created.outcome.acked:
            return
        ref = created.ref
        certain = not created.outcome.ambiguous
        for _ in range(2):  # a release gives the request a second round
            winner = self.claim(ref, certain)
            if winner is None:
                return
            steps = [("message", winner, None), ("message", requestor, None),
                     ("status", winner, "in_progress")]
            roll = self.rng.random()
            if roll < 0.1:
                steps.append(("status", requestor, "cancelled"))
            elif roll < 0.2:
                steps += [("status", winner, "partial"), ("status", winner, "completed")]
            elif roll < 0.3:
                steps.append(("status", winner, "pending"))
            else:
                steps.append(("status", winner, "completed"))
            for kind, actor, to in steps:
                if self.run_.stop.is_set():
                    return
                op = self.write(kind, actor, ref, to)
                if not self.expect(op, certain):
                    return
                certain = certain and not op.outcome.ambiguous
            if steps[-1][2] != "pending":
                return


class Prober(threading.Thread):
    """A create every PROBE_EVERY through a replica that is not under a fault, each in its
    own thread so a hung one delays nothing: when did the exchange answer writes again?"""

    def __init__(self, run):
        super().__init__(daemon=True)
        self.run_ = run
        self.lock = threading.Lock()
        self.acks = []  # (sent, done)

    def run(self):
        while not self.run_.stop.is_set():
            threading.Thread(target=self.probe, daemon=True).start()
            time.sleep(PROBE_EVERY)

    def probe(self):
        via = random.choice(self.run_.cluster.healthy())
        client = Client(self.run_.cluster, self.run_.stats)
        op = Op(self.run_.ledger.token("probe"), "create", "agent-2")
        op.outcome = client.send("POST", f"/api/v1/exchanges/{LOAD_EXCHANGE}/requests",
                                 self.run_.keys[LOAD_EXCHANGE]["agent-2"],
                                 {"intent": f"probe {op.token}"}, via=via,
                                 timeout=PROBE_TIMEOUT, deadline=0)
        if op.outcome.acked:
            op.ref = op.outcome.answer.body.get("ref")
            with self.lock:
                self.acks.append((op.outcome.sent, op.outcome.done))
        self.run_.ledger.add(op)

    def back_after(self, t0, timeout=FAILOVER_BOUND):
        """Seconds from t0 to the first acknowledged probe sent after it, or None."""
        while time.monotonic() - t0 < timeout:
            with self.lock:
                done = [d for s, d in self.acks if s >= t0]
            if done:
                return min(done) - t0
            time.sleep(0.05)
        return None

    def longest_gap(self, start, end):
        with self.lock:
            done = sorted(d for s, d in self.acks if start <= d <= end)
        marks = [start] + done + [end]
        return max(b - a for a, b in itertools.pairwise(marks))


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------

class Run:
    def __init__(self, endpoint, work):
        self.endpoint, self.work = endpoint, work
        self.bucket_name = f"replicas-{int(time.time())}-{random.randrange(1 << 24):06x}"
        self.bucket = Bucket(endpoint, self.bucket_name)
        self.loop = ProxyLoop()
        self.cluster = Cluster(work, endpoint, self.bucket_name, self.loop)
        self.stats = Stats()
        self.ledger = Ledger()
        self.log = Log(self.bucket, LOAD_EXCHANGE)
        self.keys = {RACE_EXCHANGE: {}, LOAD_EXCHANGE: {}}
        self.stop = threading.Event()
        self.pacer = Pacer(RATE)
        self.unexpected, self.double_claims, self.load_errors = [], [], []
        self.contested = 0
        self.prober = None
        self.workers = []

    def owner(self, exchange):
        """The replica that owns `exchange` now, as X-Mess-Replica names it (replica 0 if
        none does within 5 s: the header check of the load reports that)."""
        key = next(iter(self.keys[exchange].values()))
        for _ in range(50 if REPLICA_MODE else 0):
            for r in self.cluster.replicas:
                try:
                    ans = call(r.url, "GET", f"/api/v1/exchanges/{exchange}/requests?limit=1", key)
                except (OSError, http.client.HTTPException):
                    continue
                index = self.cluster.index_of(ans.owner)
                if ans.status == 200 and index is not None:
                    return index
            time.sleep(0.1)
        if REPLICA_MODE:
            info(f"no replica names the owner of {exchange}: taking replica 0")
        return 0


def start_replicas(run):
    run.bucket.create()
    for r in run.cluster.replicas:
        r.start()
    took = [r.ready() for r in run.cluster.replicas]
    check(f"start: {REPLICAS} replica(s) on one bucket answer /readyz 200",
          all(t is not None for t in took), f"{took}")
    if not all(t is not None for t in took):
        raise RuntimeError("the replicas did not start")
    measure(f"start: ready in {max(took):.1f}s")
    if REPLICA_MODE:
        healths = [call(r.url, "GET", "/health").body for r in run.cluster.replicas]
        check("start: /health names each replica's own URL, owning nothing yet",
              all((h.get("replica") or {}).get("url") == r.url
                  and (h.get("replica") or {}).get("owned") == 0
                  for h, r in zip(healths, run.cluster.replicas)), f"{healths}")


def register(run):
    """The members of both exchanges, registered through the replicas in turn; each key
    must then authenticate through every replica."""
    client = Client(run.cluster, run.stats)
    members = {RACE_EXCHANGE: ["requester"] + [f"claimer-{i}" for i in range(1, CLAIMERS + 1)],
               LOAD_EXCHANGE: LOAD_REQUESTORS + LOAD_EXECUTORS}
    bad = []
    for exchange, ids in members.items():
        for mid in ids:
            out = client.send("POST", f"/api/v1/exchanges/{exchange}/register", None,
                              {"executor_id": mid})
            if out.acked:
                run.keys[exchange][mid] = out.answer.body["api_key"]
            else:
                bad.append((exchange, mid, out.answer and out.answer.status))
    check("members: every registration through the replicas in turn is 201", not bad, f"{bad}")
    if bad:
        raise RuntimeError("registration failed")
    refused = []
    for exchange, keys in run.keys.items():
        for mid, key in keys.items():
            for r in run.cluster.replicas:
                ans = Client(run.cluster, run.stats).read(
                    f"/api/v1/exchanges/{exchange}/requests?limit=1", key, via=r.index)
                if ans is None or ans.status != 200:
                    refused.append((exchange, mid, r.index, ans and ans.status))
    check(f"members: every key authenticates through every replica "
          f"({sum(len(k) for k in run.keys.values())} keys x {REPLICAS})", not refused,
          f"{refused[:5]}")


def claim_race(run):
    path = f"/api/v1/exchanges/{RACE_EXCHANGE}"
    keys = run.keys[RACE_EXCHANGE]
    claimers = [m for m in keys if m != "requester"]
    start_503 = len(run.stats.unavailable)
    not_one, bad_losers, disagree, owners = [], [], [], set()
    started = time.monotonic()
    for n in range(ROUNDS):
        created = Client(run.cluster, run.stats, start=n).send(
            "POST", f"{path}/requests", keys["requester"], {"intent": f"race {n}"})
        if not created.acked:
            not_one.append((n, "create", created.answer and created.answer.status))
            continue
        ref = created.answer.body["ref"]
        owners.add(created.answer.owner)
        outcomes = at_once(len(claimers), lambda i, ref=ref: Client(
            run.cluster, run.stats, start=i).send("PATCH", f"{path}/requests/{ref}",
                                                  keys[claimers[i]], {"status": "claimed"}))
        winners = [claimers[i] for i, o in enumerate(outcomes) if o.acked]
        owners.update(o.answer.owner for o in outcomes if o.answer and o.answer.status != 503)
        if len(winners) != 1:
            not_one.append((n, ref, winners, [o.answer and o.answer.status for o in outcomes]))
            continue
        for o in outcomes:
            if not o.acked and not (o.answer and o.answer.status == 409
                                    and o.answer.body.get("code") == "already_claimed"):
                bad_losers.append((n, o.answer and o.answer.status, o.answer and o.answer.body))
        for r in run.cluster.replicas:
            ans = Client(run.cluster, run.stats).read(f"{path}/requests/{ref}", keys["requester"],
                                                      via=r.index)
            t = ans.body.get("thread", {}) if ans and ans.status == 200 else {}
            if t.get("status") != "claimed" or t.get("executor_id") != winners[0]:
                disagree.append((n, r.index, t.get("status"), t.get("executor_id"), winners[0]))
    took = time.monotonic() - started
    check(f"claim race: each of {ROUNDS} requests, claimed by {len(claimers)} members at once "
          f"through {REPLICAS} replica(s), has exactly one winner", not not_one, f"{not_one[:3]}")
    judged = ROUNDS - len(not_one)
    check(f"claim race: every other claimer got 409 already_claimed ({judged} rounds with a "
          "winner)", judged > 0 and not bad_losers, f"{bad_losers[:3]}")
    check(f"claim race: every replica shows the winner as the assignee ({judged} rounds)",
          judged > 0 and not disagree, f"{disagree[:3]}")
    if REPLICA_MODE:
        check("claim race: every answer names one owner, one of the replicas (X-Mess-Replica)",
              len(owners) == 1 and owners <= run.cluster.urls, f"{owners}")
    measure(f"claim race: {ROUNDS} rounds x {len(claimers)} claimers in {took:.1f}s, "
            f"{len(run.stats.unavailable) - start_503} answers 503")


# --- faults -------------------------------------------------------------------------------

def fault(run, name, inject, hold, heal):
    """Injects a fault on the load exchange's owner, holds it, heals it; reports how long
    the exchange took to answer writes again, then checks every acknowledged write."""
    victim = run.owner(LOAD_EXCHANGE)
    run.cluster.faulted = {victim}
    t0 = time.monotonic()
    info(f"{name}: replica {victim} owns {LOAD_EXCHANGE}; fault at {utc()} UTC")
    inject(victim)
    hold(t0)
    info(f"{name}: healed at {utc()} UTC")
    heal(victim)
    back = run.prober.back_after(t0)
    healed = time.monotonic()
    run.cluster.faulted = set()
    check(f"{name}: the exchange answers writes again within {FAILOVER_BOUND:.0f}s",
          back is not None, "no acknowledged write after the fault")
    measure(f"failover: {name} {back:.2f}s" if back is not None else f"failover: {name} never")
    measure(f"{name}: {run.stats.count(run.stats.unavailable, t0, healed)} answers 503, "
            f"{run.stats.count(run.stats.no_answer, t0, healed)} requests without an answer")
    time.sleep(LEASE)
    verify(run, name)
    return victim, t0


def sigkill_owner(run):
    def hold(t0):  # until another replica takes over (never, with one), then restart
        run.prober.back_after(t0, timeout=3 * LEASE + 5 if REPLICA_MODE else 0.5)

    def heal(victim):
        r = run.cluster.replicas[victim]
        r.start()
        check("sigkill-owner: the killed replica restarts on its port and gets ready",
              r.ready() is not None, f"replica {victim}")

    fault(run, "sigkill-owner", lambda v: run.cluster.replicas[v].kill(), hold, heal)


def sigstop_owner(run):
    state = {}

    def heal(victim):
        state["cont"] = time.monotonic()
        run.cluster.replicas[victim].signal(signal.SIGCONT)

    victim, _ = fault(run, "sigstop-owner",
                      lambda v: run.cluster.replicas[v].signal(signal.SIGSTOP),
                      lambda t0: time.sleep(3 * LEASE), heal)
    late = [o for o in run.ledger.snapshot() if o.outcome and o.outcome.acked
            and o.outcome.via == victim and o.outcome.done >= state["cont"]]
    measure(f"sigstop-owner: {len(late)} writes acknowledged by it after SIGCONT "
            "(each held to the check above)")


def proxy_cut(run, mode):
    name = f"s3-{mode}"
    fault(run, name, lambda v: getattr(run.cluster.replicas[v].proxy, mode)(),
          lambda t0: time.sleep(3 * LEASE),
          lambda v: run.cluster.replicas[v].proxy.restore())


def rolling_restart(run):
    start = time.monotonic()
    for r in run.cluster.replicas:
        run.cluster.faulted = {r.index}
        took = r.terminate()
        check(f"rolling-restart: replica {r.index} exits on SIGTERM", took is not None,
              "killed after 40 s")
        r.start()
        ready = r.ready()
        check(f"rolling-restart: replica {r.index} is ready again", ready is not None, "")
        measure(f"rolling-restart: replica {r.index} stopped in {took or 0:.1f}s, "
                f"ready in {ready or 0:.1f}s")
    run.cluster.faulted = set()
    end = time.monotonic()
    back = run.prober.back_after(end - 0.001)
    check("rolling-restart: the exchange answers writes afterwards", back is not None, "")
    # Writes never stop for long when leases are handed over: the longest wait is the
    # measure of this scenario.
    measure(f"failover: rolling-restart {run.prober.longest_gap(start, end):.2f}s "
            "(the longest time without an acknowledged write)")
    measure(f"rolling-restart: {run.stats.count(run.stats.unavailable, start, end)} answers "
            f"503, {run.stats.count(run.stats.no_answer, start, end)} requests without an "
            f"answer (retried on another replica), {end - start:.1f}s in all")
    time.sleep(LEASE)
    verify(run, "rolling-restart")


# --- the end ------------------------------------------------------------------------------

def final_checks(run):
    path = f"/api/v1/exchanges/{LOAD_EXCHANGE}"
    key = run.keys[LOAD_EXCHANGE]["agent-1"]
    uncounted = verify(run, "the end", at_rest=True)
    measure(f"the end: {len(uncounted)} segments under events/ that no seal counts (DuckDB "
            "reads them, replay does not)")
    listings = [json.dumps(list_threads(Client(run.cluster, run.stats), path, key, via=r.index),
                           sort_keys=True) for r in run.cluster.replicas]
    check("the end: every replica answers the same listing, page by page",
          len(set(listings)) == 1 and listings[0] != "null",
          f"threads listed per replica: {[len(json.loads(x) or {}) for x in listings]}")
    if REPLICA_MODE:
        used, wrong = run.log.runs()
        check(f"the end: each merged run replay reads holds exactly the events of the segments "
              f"it stands for ({used} runs)", used > 0 and not wrong, f"{wrong[:3]}")
        owner = run.owner(LOAD_EXCHANGE)
        raw = run.bucket.get(f"leases/exchange={LOAD_EXCHANGE}/lease.json")
        lease = json.loads(raw) if raw else {}
        check("the end: the lease in the bucket names the replica X-Mess-Replica names",
              lease.get("url") == run.cluster.replicas[owner].url
              and isinstance(lease.get("epoch"), int), f"{lease} vs replica {owner}")
        owned = [(call(r.url, "GET", "/health").body.get("replica") or {}).get("owned")
                 for r in run.cluster.replicas]
        check("the end: /health counts the owner's exchanges, no exchange owned twice",
              (owned[owner] or 0) >= 1 and sum(o or 0 for o in owned) <= 2, f"{owned}")


def report_load(run, started):
    ops = [o for o in run.ledger.snapshot() if o.outcome is not None]
    acked = [o for o in ops if o.outcome.acked]
    kinds = {k: sum(1 for o in acked if o.kind == k) for k in ("create", "message", "status")}
    s = run.stats
    check("load: no 5xx but 503 with Retry-After, anywhere in the run", not s.bad_5xx,
          f"{len(s.bad_5xx)}: {s.bad_5xx[:3]}")
    check("load: every 503 carries a JSON error", not s.bad_503_body, f"{s.bad_503_body[:3]}")
    check(f"load: no claim won twice ({run.contested} contested claims)", not run.double_claims,
          f"{run.double_claims[:3]}")
    check("load: no move the acknowledged history allows was refused", not run.unexpected,
          f"{len(run.unexpected)}: {run.unexpected[:3]}")
    check("load: the load generator ran without an error of its own", not run.load_errors,
          f"{run.load_errors[:3]}")
    if REPLICA_MODE:
        check(f"load: every exchange-scoped answer names its replica, X-Mess-Replica "
              f"({s.scoped} answers)", not s.unnamed, f"{len(s.unnamed)}: {s.unnamed[:3]}")
    check(f"load: the history holds at least {HISTORY} writes, each checked ({len(ops)})",
          len(ops) >= HISTORY, f"{len(ops)} in {time.monotonic() - started:.0f}s")
    measure(f"load: {len(ops)} writes in {time.monotonic() - started:.0f}s "
            f"({len(acked)} acknowledged: {kinds['create']} creates, {kinds['message']} "
            f"messages, {kinds['status']} status changes; "
            f"{sum(1 for o in ops if o.outcome.refused)} refused, "
            f"{sum(1 for o in ops if not o.outcome.acked and not o.outcome.refused)} "
            f"without an acknowledgement)")
    measure(f"load: {s.writes + s.reads} requests answered in the whole run "
            f"({s.writes} writes, {s.reads} reads), {len(s.unavailable)} of them 503, "
            f"{len(s.no_answer)} requests without an answer ({s.timeouts_408} of them 408 "
            "from actix's request timer, after SIGCONT)")


def history_under_faults(run):
    started = time.monotonic()
    run.prober = Prober(run)
    run.workers = [Worker(run, w) for w in range(WORKERS)]
    run.prober.start()
    for w in run.workers:
        w.start()
    time.sleep(5)
    sigkill_owner(run)
    sigstop_owner(run)
    proxy_cut(run, "refuse")
    proxy_cut(run, "stall")
    rolling_restart(run)
    deadline = time.monotonic() + HISTORY_GRACE
    while (sum(1 for o in run.ledger.snapshot() if o.outcome is not None) < HISTORY
           and time.monotonic() < deadline):
        time.sleep(0.5)
    run.stop.set()
    for w in run.workers + [run.prober]:
        w.join(timeout=WRITE_TIMEOUT + WRITE_DEADLINE)
    time.sleep(0.5)
    report_load(run, started)
    final_checks(run)


def main():
    endpoint, work = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("replicas.py: terminated"))
    if not os.access(BIN, os.X_OK):
        check(f"the binary {BIN} exists (this suite builds nothing)", False, "missing")
        print(f"replicas: {PASSED} passed, {FAILED} failed")
        sys.exit(1)
    run = Run(endpoint, work)
    info(f"bucket {run.bucket_name}, {REPLICAS} replica(s) of {BIN}, "
         f"{RATE:.0f} load writes/s by {WORKERS} workers")
    try:
        start_replicas(run)
        register(run)
        claim_race(run)
        history_under_faults(run)
    except BaseException as e:  # a crash is a failure, and the replicas still stop
        traceback.print_exc()
        check("the run completes", False, repr(e))
    finally:
        run.stop.set()
        run.cluster.stop_all()
    print("summary:")
    for line in MEASURES:
        print(f"  {line}")
    print(f"replicas: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
