import assert from "node:assert/strict";
import { test } from "node:test";
import vm from "node:vm";

import { build } from "../build.mjs";
import { events, fakeWindow } from "./fake-window.mjs";

function runScript(win, script) {
  const context = { window: win, document: win.document, URL, crypto: globalThis.crypto };
  win.document.currentScript = script;
  vm.runInNewContext(build()["eye.js"], context);
}

test("the classic script sets window.theEye and starts from its tag's data-write-key", async () => {
  const win = fakeWindow({ url: "https://shop.example/" });
  runScript(win, { src: "https://eye.example/sdk/eye.js", dataset: { writeKey: "eye_wk_tag" } });
  assert.equal(typeof win.theEye.track, "function");
  await win.theEye.flush();
  const [view] = events(win.requests);
  assert.equal(win.requests[0].url, "https://eye.example/events/");
  assert.equal(win.requests[0].json.writeKey, "eye_wk_tag");
  assert.equal(view.name, "pageview");
});

test("loaded twice, the classic script keeps the first tracker", () => {
  const win = fakeWindow();
  runScript(win, { src: "https://eye.example/sdk/eye.js", dataset: {} });
  const first = win.theEye;
  runScript(win, { src: "https://eye.example/sdk/eye.js", dataset: {} });
  assert.equal(win.theEye, first);
});

test("the module and the script share one source and one version", async () => {
  const files = build();
  const { VERSION } = await import("../src/eye.js");
  for (const text of Object.values(files)) assert.ok(text.startsWith(`/*! The Eye browser tracker ${VERSION} `));
  assert.ok(files["eye.mjs"].includes("export function createTracker"));
  assert.ok(!/^\s*export\b/m.test(files["eye.js"]));
});
