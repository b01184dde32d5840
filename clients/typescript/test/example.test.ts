/** examples/chat-resume.mjs, run as a user would: the reply printed exactly once
 * across the drop it causes. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { REPO, slowScript, startServer, within, type Server } from "./support.js";

const SLOW = slowScript(30, 40);
let server: Server;
before(async () => {
  server = await startServer({ "slow.jsonl": SLOW.script });
});
after(async () => {
  await server.stop();
});

test("chat-resume.mjs prints the whole reply once after its forced disconnect", async () => {
  const proc = spawn(process.execPath, [join(REPO, "examples", "chat-resume.mjs"), "tell me slowly"], {
    env: { ...process.env, YAMABIKO_URL: server.url, YAMABIKO_TOKEN: server.token(), YAMABIKO_MODEL: "scripted/slow.jsonl" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await within(new Promise<number | null>((resolve) => proc.on("exit", resolve)), "the example to exit").finally(
    () => proc.exitCode === null && proc.kill(),
  );
  assert.equal(code, 0, stderr);
  assert.equal(stdout, `${SLOW.text}\n`);
  assert.match(stderr, /stream resumed after seq [1-9]/);
  assert.match(stderr, /\[stop: 30 tokens/);
});
