// Build the served client from src/: pushwire.js (a classic script that defines
// globalThis.Pushwire) and pushwire.mjs (an ES module), into the Python package.
// `node scripts/build.js --check` builds into a temporary directory instead and fails
// if the committed files differ.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const staticDir = join(root, "..", "..", "src", "pushwire", "static");
const FILES = ["pushwire.js", "pushwire.mjs"];

/** @param {string} flavour */
function header(flavour) {
  return [
    "/*",
    ` * pushwire${flavour === "esm" ? ".mjs" : ".js"}: the browser client for pushwire. Reference: docs/client-js.md.`,
    " *",
    " * GENERATED from clients/js/src by esbuild: do not edit. To change it, edit the",
    " * sources and run `npm ci && npm run build` in clients/js (`npm run check` verifies).",
    " *",
    flavour === "esm"
      ? " * An ES module: `import { Pushwire } from \"https://HOST/pushwire.mjs\"` (also the default export)."
      : " * A classic script: <script src> defines globalThis.Pushwire; `import \"https://HOST/pushwire.js\"`\n" +
        " * from a module does too. No export statement: for that, use /pushwire.mjs.",
    " *",
    " * Receives over WebSocket (/ws), Server-Sent Events (/sse, read with fetch so that",
    " * every named event and every keep-alive comment is seen) or long-polling (/poll);",
    " * publishes over the open WebSocket, otherwise with POST /publish.",
    " */",
  ].join("\n");
}

/** @param {string} outDir */
async function build(outDir) {
  const common = {
    // Paths in the output's comments are relative to this, whatever the caller's directory.
    absWorkingDir: root,
    bundle: true,
    target: "es2020",
    charset: "utf8",
    legalComments: "none",
    logLevel: "warning",
    // global.js hands the API to CommonJS when module.exports exists; that is on purpose.
    logOverride: { "commonjs-variable-in-esm": "silent" },
  };
  await esbuild.build({
    ...common,
    entryPoints: [join(root, "src", "global.js")],
    format: "iife",
    banner: { js: header("iife") },
    outfile: join(outDir, "pushwire.js"),
  });
  await esbuild.build({
    ...common,
    entryPoints: [join(root, "src", "index.js")],
    format: "esm",
    banner: { js: header("esm") },
    outfile: join(outDir, "pushwire.mjs"),
  });
}

if (process.argv.includes("--check")) {
  const outDir = mkdtempSync(join(tmpdir(), "pushwire-build-"));
  try {
    await build(outDir);
    const stale = FILES.filter((name) => {
      let committed;
      try {
        committed = readFileSync(join(staticDir, name));
      } catch {
        return true;
      }
      return !committed.equals(readFileSync(join(outDir, name)));
    });
    if (stale.length) {
      console.error(
        `src/pushwire/static/${stale.join(" and ")} ${stale.length > 1 ? "differ" : "differs"}` +
          " from a fresh build of clients/js/src:" +
          " run npm run build in clients/js and commit the result"
      );
      process.exitCode = 1;
    } else {
      console.log("src/pushwire/static/pushwire.js and pushwire.mjs match a fresh build");
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
} else {
  await build(staticDir);
  console.log("wrote " + FILES.map((name) => join("src/pushwire/static", name)).join(" and "));
}
