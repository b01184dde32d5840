// Generates src/generated/types.ts from the server's OpenRPC document.
//
//   node scripts/generate.mjs            write the file
//   node scripts/generate.mjs --check    exit 1 when the committed file is stale
//   node scripts/generate.mjs --schema PATH   read another openrpc.json
//
// The document is yamabiko/schema/openrpc.json (docs/protocol.md). A method's params
// come in either of two shapes and both give the same TypeScript: one param named
// `params` whose schema is the whole object, or one param per field (by-name).
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const OUTPUT = join(here, "..", "src", "generated", "types.ts");
const DEFAULT_SCHEMA = join(here, "..", "..", "..", "yamabiko", "schema", "openrpc.json");

const REF_PREFIX = "#/components/schemas/";

/** A TypeScript name for a component: `yamabiko.schema.audio.EndParams` -> `AudioEndParams`. */
export function typeName(component) {
  const parts = component.split(".");
  let name = parts[parts.length - 1];
  if (parts.length > 1) {
    const module = parts[parts.length - 2];
    name = module.charAt(0).toUpperCase() + module.slice(1) + name;
  }
  return name.replace(/[^A-Za-z0-9_$]/g, "_");
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (name) => (IDENT.test(name) ? name : JSON.stringify(name));

function comment(text, indent) {
  if (!text) return "";
  const lines = text
    .trim()
    .split("\n")
    .map((l) => l.trim().replace(/\*\//g, "*\\/"))
    .filter((l, i, all) => l !== "" || (i > 0 && all[i - 1] !== ""));
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? " " + l : ""}`).join("\n")}\n${indent} */\n`;
}

function union(types) {
  const unique = [...new Set(types)];
  return unique.length === 0 ? "never" : unique.join(" | ");
}

/** The TypeScript type of a JSON Schema, written inline. */
export function tsType(schema, indent = "") {
  if (schema === true || schema === undefined || schema === null) return "unknown";
  if (schema === false) return "never";
  if (schema.$ref) {
    if (!schema.$ref.startsWith(REF_PREFIX)) throw new Error(`unsupported $ref ${schema.$ref}`);
    return typeName(schema.$ref.slice(REF_PREFIX.length));
  }
  if ("const" in schema) return JSON.stringify(schema.const);
  if (schema.enum) return union(schema.enum.map((v) => JSON.stringify(v)));
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return union(alternatives.map((s) => wrap(tsType(s, indent))));
  if (Array.isArray(schema.type)) {
    return union(schema.type.map((t) => tsType({ ...schema, type: t }, indent)));
  }
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      if (schema.prefixItems) {
        return `[${schema.prefixItems.map((item) => tsType(item, indent)).join(", ")}]`;
      }
      return `${wrap(tsType(schema.items, indent))}[]`;
    case "object":
    case undefined:
      return objectType(schema, indent);
    default:
      throw new Error(`unsupported schema type ${schema.type}`);
  }
}

function wrap(type) {
  return /[|&]/.test(type) && !type.startsWith("{") ? `(${type})` : type;
}

function objectType(schema, indent) {
  const props = schema.properties ?? {};
  const names = Object.keys(props);
  const extra = schema.additionalProperties;
  if (names.length === 0) {
    if (extra && extra !== true) return `{ [key: string]: ${tsType(extra, indent)} }`;
    return schema.type === "object" && !schema.title
      ? "{ [key: string]: unknown }"
      : "Record<string, never>";
  }
  const required = new Set(schema.required ?? []);
  const inner = indent + "  ";
  const fields = names.map((name) => {
    const prop = props[name];
    const optional = required.has(name) ? "" : "?";
    return `${comment(prop.description, inner)}${inner}${key(name)}${optional}: ${tsType(prop, inner)};`;
  });
  if (extra && extra !== true) fields.push(`${inner}[key: string]: unknown;`);
  return `{\n${fields.join("\n")}\n${indent}}`;
}

/** The params object of a method, whichever of the two shapes the document uses. */
export function paramsType(method) {
  const params = method.params ?? [];
  if (params.length === 1 && params[0].name === "params" && method.paramStructure !== "by-position") {
    return tsType(params[0].schema, "    ");
  }
  if (params.length === 0) return "Record<string, never>";
  const fields = params.map((p) => {
    const optional = p.required ? "" : "?";
    return `${comment(p.description ?? p.summary, "      ")}      ${key(p.name)}${optional}: ${tsType(p.schema, "      ")};`;
  });
  return `{\n${fields.join("\n")}\n    }`;
}

export function generate(doc) {
  const out = [];
  out.push("// Generated by scripts/generate.mjs from yamabiko/schema/openrpc.json; do not edit.");
  out.push("// Run `npm run generate` after the server's schema changes (`npm test` fails while stale).");
  out.push("/* eslint-disable */");
  out.push("");
  out.push(`/** The protocol version this file was generated for. */`);
  out.push(`export const SCHEMA_VERSION = ${JSON.stringify(doc.info?.version ?? "")};`);
  out.push("");
  const schemas = doc.components?.schemas ?? {};
  for (const component of Object.keys(schemas).sort()) {
    const schema = schemas[component];
    const name = typeName(component);
    const body = tsType(schema, "");
    out.push(comment(schema.description, "").trimEnd());
    if (body.startsWith("{\n")) out.push(`export interface ${name} ${body}`);
    else out.push(`export type ${name} = ${body};`);
    out.push("");
  }
  const groups = {
    ClientRequests: [],
    ClientNotifications: [],
    ServerRequests: [],
    ServerNotifications: [],
  };
  for (const method of [...doc.methods].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const sender = method["x-sender"] ?? "client";
    const notification = method["x-notification"] === true;
    const params = paramsType(method);
    const doc_ = comment(method.summary, "  ");
    const entry = notification
      ? `${doc_}  ${JSON.stringify(method.name)}: ${params};`
      : `${doc_}  ${JSON.stringify(method.name)}: {\n    params: ${params};\n    result: ${tsType(method.result?.schema, "    ")};\n  };`;
    const senders = sender === "both" ? ["client", "server"] : [sender];
    for (const s of senders) {
      const side = s === "server" ? "Server" : "Client";
      groups[`${side}${notification ? "Notifications" : "Requests"}`].push(entry);
    }
  }
  const describe = {
    ClientRequests: "Requests the client sends: method name to params and result.",
    ClientNotifications: "Notifications the client sends: method name to params.",
    ServerRequests: "Requests the server sends (answer them with `client.handle`).",
    ServerNotifications: "Notifications the server sends: method name to params.",
  };
  for (const [name, entries] of Object.entries(groups)) {
    out.push(`/** ${describe[name]} */`);
    out.push(`export interface ${name} {`);
    out.push(...entries);
    out.push("}");
    out.push("");
  }
  const errors = doc.components?.errors ?? {};
  out.push("/** What each error code the server answers with means (docs/protocol.md). */");
  out.push("export const ERROR_MEANINGS: Readonly<Record<number, string>> = {");
  for (const e of Object.values(errors).sort((a, b) => b.code - a.code)) {
    out.push(`  [${e.code}]: ${JSON.stringify(e.message)},`);
  }
  out.push("};");
  out.push("");
  return out.join("\n").replace(/\n{3,}/g, "\n\n");
}

function main(argv) {
  const check = argv.includes("--check");
  const at = argv.indexOf("--schema");
  const source = at >= 0 ? resolve(argv[at + 1]) : DEFAULT_SCHEMA;
  const text = generate(JSON.parse(readFileSync(source, "utf8")));
  if (check) {
    let current = "";
    try {
      current = readFileSync(OUTPUT, "utf8");
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      console.error(`${OUTPUT} is stale against ${source}: run \`npm run generate\``);
      return 1;
    }
    console.log("generated types are up to date");
    return 0;
  }
  mkdirSync(dirname(OUTPUT), { recursive: true });
  writeFileSync(OUTPUT, text);
  console.log(`wrote ${OUTPUT}`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
