// A minimal recipient of Kansrijke Start meldingen, for a JGZ organisation's or wijkteam's developer.
//
// The contract is the AsyncAPI document (docs/asyncapi.yaml, or GET /asyncapi.json on the routing
// service). This consumer does what every recipient must:
//   - read its organisation's queue `kansrijk.deliveries.<org_id>` with manual acks;
//   - drop duplicates by `message_id` (delivery is at-least-once);
//   - on `melding.retracted`, delete what it holds of the melding, and remember the retraction: a delivery
//     that arrives after its retraction is not kept;
//   - follow `sequence` (1, 2, 3, … per organisation): a number missing below the highest seen is fetched
//     with GET /v1/deliveries/messages?after_sequence=N, and fetched again every second while that fails;
//   - fetch a thin delivery's content from its `href`;
//   - report `received` with POST /v1/deliveries/{id}/status.
// A real recipient keeps `seen`, `retracted`, `held` and the sequence durably, in its own database.
//
// Configuration (environment): KANSRIJK_AMQP_URL, KANSRIJK_ROUTING_URL, KANSRIJK_ORG_ID, KANSRIJK_TOKEN;
// optional KANSRIJK_AFTER_SEQUENCE (the last number handled before; default: the first message sets it),
// KANSRIJK_COUNT (stop after this many queue messages), KANSRIJK_IDLE_SECONDS (stop when idle this long).
// Output: one JSON object per line, what happened, without personal data.

import amqp from "amqplib";

type Body = Record<string, unknown> & { delivery_id: string; melding_id: string; sequence?: number };

function setting(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`set ${name}`);
  return value;
}

const amqpUrl = setting("KANSRIJK_AMQP_URL");
const routingUrl = setting("KANSRIJK_ROUTING_URL");
const orgId = setting("KANSRIJK_ORG_ID");
const token = setting("KANSRIJK_TOKEN");
const count = Number(setting("KANSRIJK_COUNT", "0"));
const idleSeconds = Number(setting("KANSRIJK_IDLE_SECONDS", "0"));
const afterSequence = process.env.KANSRIJK_AFTER_SEQUENCE;

const seen = new Set<string>(); // message ids handled
const retracted = new Set<string>(); // delivery ids retracted
const held = new Map<string, Body>(); // melding id -> what we keep of it
let lastSequence: number | null = afterSequence === undefined ? null : Number(afterSequence);
const beyond = new Set<number>(); // numbers handled above lastSequence

function say(event: string, fields: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ event, ...fields }));
}

class TryAgain extends Error {}

async function routing(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(new URL(path, routingUrl), {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...init.headers },
  });
}

// Keep what one message says, once per message id. Returns the delivery kept, to report on.
async function take(messageId: string, type: string, body: Body): Promise<Body | null> {
  if (seen.has(messageId)) {
    say("duplicate", { message_id: messageId });
    return null;
  }
  // Claimed before anything is awaited: the retry timer's gap fetch may bring the message the queue brings.
  seen.add(messageId);
  let kept: Body | null = null;
  if (type === "melding.delivered" && "href" in body && !("patient" in body)) {
    const response = await routing(String(body.href)).catch(() => null); // thin: the content by token
    if (response?.status !== 200) {
      seen.delete(messageId); // not kept: taken again when it comes again
      throw new TryAgain();
    }
    body = { ...((await response.json()) as Body), sequence: body.sequence };
  }
  if (type === "melding.retracted") {
    retracted.add(body.delivery_id);
    held.delete(body.melding_id);
    say("retracted", { delivery_id: body.delivery_id, sequence: body.sequence });
  } else if (type === "melding.reminder") {
    say("reminder", { delivery_id: body.delivery_id, sequence: body.sequence });
  } else if (type !== "melding.delivered") {
    say("ignored", { type, message_id: messageId });
  } else if (retracted.has(body.delivery_id) || body.status === "retracted") {
    retracted.add(body.delivery_id);
    say("dropped-retracted", { delivery_id: body.delivery_id, sequence: body.sequence });
  } else {
    held.set(body.melding_id, body);
    kept = body;
    say("delivered", { delivery_id: body.delivery_id, melding_id: body.melding_id, sequence: body.sequence });
  }
  return kept;
}

async function reportReceived(delivery: Body): Promise<void> {
  const response = await routing(`/v1/deliveries/${delivery.delivery_id}/status`, {
    method: "POST",
    body: JSON.stringify({ status: "received" }),
  });
  // 409: retracted meanwhile, or already further along: nothing to report.
  say(response.ok || response.status === 409 ? "reported" : "report-failed", {
    delivery_id: delivery.delivery_id,
    http_status: response.status,
  });
}

function handled(sequence: number): void {
  if (lastSequence === null) return;
  if (sequence > lastSequence) beyond.add(sequence);
  while (beyond.has(lastSequence + 1)) {
    lastSequence += 1;
    beyond.delete(lastSequence);
  }
}

// One gap fetch at a time: a message's and the retry timer's would otherwise both take what is missing.
let filling: Promise<void> | null = null;

function fillGapOnce(): Promise<void> {
  filling ??= fillGap().finally(() => (filling = null));
  return filling;
}

async function fillGap(): Promise<void> {
  if (beyond.size === 0) return; // filled meanwhile
  say("gap", { after_sequence: lastSequence, seen_up_to: Math.max(...beyond) });
  let response: Response;
  try {
    response = await routing(`/v1/deliveries/messages?after_sequence=${lastSequence}`);
  } catch {
    return; // routing unreachable: the retry timer tries again
  }
  if (response.status !== 200) return; // the retry timer (or the next message) tries again
  const page = (await response.json()) as { items: (Body & { type: string; message_id: string })[] };
  for (const { type, message_id: messageId, ...body } of page.items) {
    if (!seen.has(messageId)) {
      try {
        const kept = await take(messageId, type, body as Body);
        if (kept !== null) await reportReceived(kept);
      } catch (error) {
        if (error instanceof TryAgain) return;
        throw error;
      }
    }
    handled(Number(body.sequence));
  }
}

async function follow(sequence: number | undefined): Promise<void> {
  if (sequence === undefined) return;
  if (lastSequence === null) lastSequence = sequence - 1;
  handled(sequence);
  while (filling !== null) await filling; // a fetch under way may fill this gap too
  if (beyond.size > 0) await fillGapOnce();
}

// A gap whose fetch failed is tried again every second: no later message may come to retry it.
function retryGaps(): ReturnType<typeof setInterval> {
  return setInterval(() => {
    if (beyond.size > 0 && filling === null) {
      fillGapOnce().catch((error: unknown) => say("gap-failed", { error: error instanceof Error ? error.name : "error" }));
    }
  }, 1000);
}

async function main(): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.prefetch(1); // one at a time: sequence bookkeeping stays simple
  const queue = `kansrijk.deliveries.${orgId}`;
  await channel.checkQueue(queue); // the platform declares it; a recipient never creates queues
  say("consuming", { queue });
  let taken = 0;
  let lastActivity = Date.now();
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  await channel.consume(queue, async (message) => {
    if (message === null) return done(); // the broker cancelled the consumer
    lastActivity = Date.now();
    const body = JSON.parse(message.content.toString("utf8")) as Body;
    const { messageId, type } = message.properties;
    try {
      const kept = await take(String(messageId), String(type), body);
      if (kept !== null) await reportReceived(kept);
      await follow(body.sequence);
      channel.ack(message); // last: with prefetch 1, the next message waits until this one is done
    } catch (error) {
      if (!(error instanceof TryAgain)) throw error;
      setTimeout(() => channel.nack(message, false, true), 1000); // offered again in a moment
      return;
    }
    taken += 1;
    if (count > 0 && taken >= count) done();
  });
  const retry = retryGaps();
  if (idleSeconds > 0) {
    const timer = setInterval(() => {
      if (Date.now() - lastActivity > idleSeconds * 1000) done();
    }, 200);
    await finished;
    clearInterval(timer);
  } else {
    await finished;
  }
  clearInterval(retry);
  say("stopped", { handled: taken, last_sequence: lastSequence, held: held.size });
  await channel.close();
  await connection.close();
}

main().catch((error: unknown) => {
  say("failed", { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
