// The browser build's size, minified and gzipped: fails above the budget (15 KB).
// Bundles src/index.ts with esbuild for the browser (`ws` left out: browsers have a
// WebSocket); the generated types vanish in the bundle since they are types only.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BUDGET_BYTES = 15 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const result = await build({
  entryPoints: [join(here, "..", "src", "index.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  external: ["ws"],
  write: false,
  logLevel: "error",
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`browser build: ${code.length} B minified, ${gzipped} B min+gzip (budget ${BUDGET_BYTES} B)`);
if (gzipped > BUDGET_BYTES) {
  console.error("over the size budget");
  process.exitCode = 1;
}
