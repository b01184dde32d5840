// Streams a chat reply, survives a dropped connection mid-reply, prints the text once.
//
//   YAMABIKO_TOKEN=$(.venv/bin/yamabiko token --sub you --tenant demo) \
//     node examples/chat-resume.mjs "How do I make the kick punchier?"
//
// To show the resume, the script talks to the server through a TCP relay it cuts
// after the first words arrive: the socket dies as on a network drop (no close frame).
// The client reconnects and re-subscribes the stream after the last seq it delivered,
// so the text below has no gap and no repeat.
import { createServer, connect as tcp } from "node:net";
import { connect } from "../clients/typescript/dist/index.js";

const url = new URL(process.env.YAMABIKO_URL ?? "ws://127.0.0.1:8765/ws");
const token = process.env.YAMABIKO_TOKEN;
const model = process.env.YAMABIKO_MODEL || undefined;
const message = process.argv[2] ?? "How do I make the kick punchier?";
if (!token) {
  console.error("set YAMABIKO_TOKEN (yamabiko token --sub you --tenant demo)");
  process.exit(2);
}

// The relay: every connection piped to the server; cut() destroys them all.
const sockets = new Set();
const relay = createServer((inbound) => {
  const outbound = tcp(Number(url.port || 80), url.hostname);
  for (const s of [inbound, outbound]) {
    sockets.add(s);
    s.on("error", () => {}).on("close", () => sockets.delete(s));
  }
  inbound.pipe(outbound).pipe(inbound);
  inbound.on("close", () => outbound.destroy());
  outbound.on("close", () => inbound.destroy());
});
await new Promise((resolve) => relay.listen(0, "127.0.0.1", resolve));
const cut = () => sockets.forEach((s) => s.destroy());

const relayed = new URL(url);
relayed.host = `127.0.0.1:${relay.address().port}`;
const client = await connect(relayed.toString(), { token, reconnect: { baseDelayMs: 100 } });
client.events.on("resubscribed", ({ afterSeq }) =>
  console.error(`\n[connection dropped; stream resumed after seq ${afterSeq}]`),
);

try {
  const reply = await client.chat.send({ message, ...(model ? { model } : {}) });
  let deltas = 0;
  for await (const text of reply) {
    process.stdout.write(text);
    if (++deltas === 3) cut();
  }
  const end = await reply.end;
  process.stdout.write("\n");
  console.error(`[${end.finishReason}: ${end.usage.outputTokens} tokens, $${end.usage.costUsd} with ${end.model}]`);
} finally {
  client.close();
  relay.close();
}
