// The generator reads both shapes of a method's params (one `params` object, or one
// param per field) and gives the same TypeScript; the committed file is current.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { generate } from "../scripts/generate.mjs";

const doc = JSON.parse(readFileSync(new URL("../../../yamabiko/schema/openrpc.json", import.meta.url), "utf8"));

/** The document with each method's params as one `params` object (its `x-params` type),
 * the shape older documents had. */
function oneObject(original) {
  const copy = structuredClone(original);
  for (const method of copy.methods) {
    method.params = [{ name: "params", required: true, schema: method["x-params"] }];
  }
  return copy;
}

test("by-name params are read as well as one params object", () => {
  const methods = (text) => text.slice(text.indexOf("export interface ClientRequests"));
  const a = methods(generate(oneObject(doc)));
  const b = methods(generate(doc));
  // By name, a method's params are an inline object rather than the named type.
  assert.match(b, /"chat\/send": \{\n    params: \{\n      message: string;/);
  assert.match(a, /"chat\/send": \{\n    params: ChatSendParams;/);
  assert.equal(a.split("\n").filter((l) => l.startsWith('  "')).length, b.split("\n").filter((l) => l.startsWith('  "')).length);
});

test("the committed generated file matches the schema", () => {
  const committed = readFileSync(new URL("../src/generated/types.ts", import.meta.url), "utf8");
  assert.equal(committed, generate(doc));
});
