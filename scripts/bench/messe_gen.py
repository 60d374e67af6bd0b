#!/usr/bin/env python3
"""10k MESSE-AF v2.1 threads: a request, a claim, a completion with a response; a tenth
with a 4 KiB att- image. Usage: gen.py OUT [N]"""
import os, sys
out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000
for i in range(n):
    day = 1 + i % 28
    ref = f"2026-03-{day:02d}-{i:05d}"
    state = ["received", "executing", "finished", "canceled"][i % 4]
    status = {"received": "pending", "executing": "in_progress", "finished": "completed", "canceled": "cancelled"}[state]
    d = os.path.join(out, "exchange", f"state={state}", ref)
    os.makedirs(d, exist_ok=True)
    t0 = f"2026-03-{day:02d}T09:00:00.000Z"
    t1 = f"2026-03-{day:02d}T09:01:00.000Z"
    t2 = f"2026-03-{day:02d}T09:12:30.000Z"
    docs = [f"""ref: {ref}
requestor: agent-{i % 50}
executor: {'null' if status in ('pending', 'cancelled') else 'phone-' + str(i % 20)}
status: {status}
created: '{t0}'
updated: '{t2}'
intent: Check item {i} on the shelf
priority: normal
history:
- {{action: created, at: '{t0}', by: agent-{i % 50}}}
""", f"""from: agent-{i % 50}
received: '{t0}'
MESS:
- v: 1.0.0
- request: {{intent: Check item {i} on the shelf, context: [Is it there?]}}
""", f"""from: exchange
received: '{t0}'
MESS:
- ack: {{re: last, ref: {ref}}}
"""]
    if status != "pending":
        docs.append(f"""from: phone-{i % 20}
received: '{t1}'
MESS:
- status: {{code: claimed}}
""")
        last = {"in_progress": "- status: {code: in_progress}\n", "completed": "- status: {code: completed}\n- response:\n    content:\n    - Yes, it is there.\n", "cancelled": "- cancel: {reason: not needed}\n"}[status]
        if status == "completed" and i % 10 == 2:
            last += f"    - image: {{file: att-001-image-shelf.jpg, mime: image/jpeg, size: 4096}}\n"
            with open(os.path.join(d, "att-001-image-shelf.jpg"), "wb") as f:
                f.write(os.urandom(4096))
        docs.append(f"from: phone-{i % 20}\nreceived: '{t2}'\nMESS:\n" + last)
    with open(os.path.join(d, f"000-{ref}.messe-af.yaml"), "w") as f:
        f.write("---\n".join(docs))
