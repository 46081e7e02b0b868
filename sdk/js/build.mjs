// Builds the tracker's two files from src/eye.js, with no tool but Node:
//   eye.mjs  the ES module, for bundlers (the source as it is);
//   eye.js   a classic script for a <script> tag: the same code in a function, which sets
//            `window.theEye` and starts from the tag's data-write-key.
//
//   node build.mjs [OUT_DIR]          write both files (default: dist)
//   node build.mjs --check OUT_DIR    exit 1 when OUT_DIR's files are not what a build makes
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
const source = readFileSync(join(here, "src", "eye.js"), "utf8");

const banner = `/*! The Eye browser tracker ${version} (MIT). Built from sdk/js/src/eye.js. */\n`;

export function build() {
  if (!source.includes(`export const VERSION = "${version}";`)) {
    throw new Error(`src/eye.js's VERSION is not package.json's ${version}`);
  }
  // The module's exports are top-level declarations; in a function they are plain ones.
  const body = source.replace(/^export (function|const) /gm, "$1 ");
  if (/^\s*export\b/m.test(body)) throw new Error("src/eye.js exports in a way build.mjs does not know");
  const script =
    banner +
    "(function () {\n" +
    '"use strict";\n' +
    body +
    "if (typeof window !== \"undefined\" && (!window.theEye || Array.isArray(window.theEye))) {\n" +
    "  start(theEye, window, document.currentScript);\n" +
    "}\n" +
    "})();\n";
  return { "eye.js": script, "eye.mjs": banner + source };
}

function main(args) {
  const check = args[0] === "--check";
  const out = (check ? args[1] : args[0]) || join(here, "dist");
  const files = build();
  if (check) {
    const stale = Object.keys(files).filter(
      (name) => !existsSync(join(out, name)) || readFileSync(join(out, name), "utf8") !== files[name],
    );
    if (stale.length) {
      console.error(`${stale.join(", ")} in ${out} not built from src/eye.js: run \`make sdk\``);
      process.exit(1);
    }
    return;
  }
  mkdirSync(out, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(out, name), text);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
