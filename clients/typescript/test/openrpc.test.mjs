// The server's OpenRPC document is valid OpenRPC, judged by the OpenRPC project's own
// validator (@open-rpc/schema-utils-js), and every $ref in it resolves.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { dereferenceDocument, validateOpenRPCDocument } from "@open-rpc/schema-utils-js";

const path = fileURLToPath(new URL("../../../yamabiko/schema/openrpc.json", import.meta.url));
const document = JSON.parse(readFileSync(path, "utf8"));

test("openrpc.json is a valid OpenRPC document", () => {
  const result = validateOpenRPCDocument(document);
  assert.equal(result, true, JSON.stringify(result, null, 2)?.slice(0, 2000));
});

test("every reference in openrpc.json resolves", async () => {
  const resolved = await dereferenceDocument(structuredClone(document));
  const chat = resolved.methods.find((m) => m.name === "chat/send");
  assert.ok(chat, "chat/send is listed");
  assert.deepEqual(
    chat.params.map((p) => p.name).slice(0, 2),
    ["message", "conversationId"],
  );
  assert.ok(chat.errors.some((e) => e.code === -32029), "chat/send lists -32029");
});
