// The seed's flow through the TypeScript SDK generated from openapi.yaml by @hey-api/openapi-ts
// (into generated-ts/, with its bundled fetch client).
//
// Usage: node dist/ts_flow.js BASE_URL
//
// register two members -> create a request -> claim it with the other member -> complete it
// with a `mess` response block -> get the thread -> list requests -> list executors, each call
// through the generated SDK functions, each answer checked.
import { randomUUID } from 'node:crypto';

import { createClient, createConfig } from './generated-ts/client/index.js';
import {
  createRequest,
  getRequest,
  health,
  listExecutors,
  listRequests,
  register,
  updateRequest,
} from './generated-ts/index.js';

const EXCHANGE = 'home';

function check(cond: unknown, what: string): asserts cond {
  if (!cond) {
    throw new Error(`FAILED: ${what}`);
  }
  console.log(`  ok: ${what}`);
}

/** The parsed body of a successful call, after checking its HTTP status. */
function expectStatus<T>(
  result: { data?: T; error?: unknown; response?: Response },
  code: number,
  what: string,
): T {
  const got = result.response?.status;
  if (got !== code || result.data === undefined) {
    throw new Error(`FAILED: ${what}: expected HTTP ${code}, got ${got}: ${JSON.stringify(result.error)}`);
  }
  console.log(`  ok: ${what}: HTTP ${code}`);
  return result.data;
}

async function main(baseUrl: string): Promise<void> {
  const anon = createClient(createConfig({ baseUrl }));
  const h = expectStatus(await health({ client: anon }), 200, 'health');
  check(h.status === 'ok', 'health is ok');

  const suffix = randomUUID().slice(0, 8);
  const requestorId = `ts-agent-${suffix}`;
  const executorId = `ts-phone-${suffix}`;

  const keys = new Map<string, string>();
  for (const [member, caps] of [
    [requestorId, []],
    [executorId, ['photo:capture']],
  ] as const) {
    const r = expectStatus(
      await register({
        client: anon,
        path: { exchange_id: EXCHANGE },
        body: { executor_id: member, display_name: member, capabilities: [...caps] },
      }),
      201,
      `register ${member}`,
    );
    check(r.executor_id === member, `registered as ${member}`);
    check(r.api_key.startsWith(`mess_${EXCHANGE}_`), 'the key names its exchange');
    keys.set(member, r.api_key);
  }
  const agent = createClient(createConfig({ baseUrl, auth: keys.get(requestorId) }));
  const phone = createClient(createConfig({ baseUrl, auth: keys.get(executorId) }));

  const created = expectStatus(
    await createRequest({
      client: agent,
      path: { exchange_id: EXCHANGE },
      body: {
        intent: 'Check if the garage door is closed',
        context: ['Getting ready for bed'],
        priority: 'normal',
        response_hint: ['image'],
      },
    }),
    201,
    'create a request',
  );
  const ref = created.ref;
  check(created.status === 'pending', `${ref} is pending`);

  const claimed = expectStatus(
    await updateRequest({
      client: phone,
      path: { exchange_id: EXCHANGE, ref },
      body: { status: 'claimed' },
    }),
    200,
    'claim it',
  );
  check(claimed.status === 'claimed', 'claimed');
  check(claimed.thread.executor_id === executorId, 'the claimer is the assignee');

  const done = expectStatus(
    await updateRequest({
      client: phone,
      path: { exchange_id: EXCHANGE, ref },
      body: { status: 'completed', mess: [{ response: { content: ['Garage is closed'] } }] },
    }),
    200,
    'complete it with a response block',
  );
  check(done.status === 'completed', 'completed');

  const t = expectStatus(
    await getRequest({ client: agent, path: { exchange_id: EXCHANGE, ref } }),
    200,
    'get it',
  ).thread;
  check(t.ref === ref, 'same ref');
  check(t.status === 'completed', 'status completed');
  check(t.executor_id === executorId, 'executor_id is the claimer');
  check(t.requestor_id === requestorId, 'requestor_id is the creator');
  check(t.messages.length === 3, `three messages (request, claim, completion): ${t.messages.length}`);
  const [first, second, third] = t.messages;
  check(first.from === requestorId && 'request' in first.mess[0], 'first: the request');
  check(
    JSON.stringify(second) ===
      JSON.stringify({ from: executorId, ts: second.ts, mess: [{ status: { re: ref, code: 'claimed' } }] }),
    "second: the claim's status block",
  );
  check(
    third.from === executorId &&
      JSON.stringify(third.mess) ===
        JSON.stringify([
          { status: { re: ref, code: 'completed' } },
          { response: { content: ['Garage is closed'] } },
        ]),
    'third: the status block, then the response block',
  );

  const page = expectStatus(
    await listRequests({ client: agent, path: { exchange_id: EXCHANGE }, query: { limit: 50 } }),
    200,
    'list requests',
  );
  check(page.threads.some((s) => s.ref === ref), 'the thread is listed');
  const donePage = expectStatus(
    await listRequests({ client: agent, path: { exchange_id: EXCHANGE }, query: { status: 'completed' } }),
    200,
    'list completed requests',
  );
  check(
    donePage.threads.every((s) => s.status === 'completed') && donePage.threads.some((s) => s.ref === ref),
    'the status filter works',
  );

  const members = expectStatus(
    await listExecutors({ client: phone, path: { exchange_id: EXCHANGE } }),
    200,
    'list executors',
  );
  const ids = new Set(members.executors.map((e) => e.id));
  check(ids.has(requestorId) && ids.has(executorId), 'both members listed');
  const phoneView = members.executors.find((e) => e.id === executorId);
  check(JSON.stringify(phoneView?.capabilities) === '["photo:capture"]', 'capabilities listed');
  console.log('typescript client: all checks passed');
}

const baseUrl = process.argv[2];
if (!baseUrl) {
  console.error('usage: node dist/ts_flow.js BASE_URL');
  process.exit(2);
}
main(baseUrl.replace(/\/+$/, '')).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
