import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { createTracker, scriptOptions, start } from "../src/eye.js";
import { FakeEvent, Site, beaconEvents, element, events, fakeWindow } from "./fake-window.mjs";

const KEY = "eye_wk_test";
const HOST = "https://eye.example";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function millisecondsOf(uuid) {
  return parseInt(uuid.replace(/-/g, "").slice(0, 12), 16);
}
const QUIET = { host: HOST, pageviews: false };

function tracker(win, options = QUIET) {
  return createTracker(win).init(KEY, options);
}

function savedQueues(site) {
  return [...site.storage].filter(([key]) => key.startsWith("the_eye_queue_"));
}

describe("events", () => {
  test("are sent in one batch with their own ids, the session, the page and the write key", async () => {
    const win = fakeWindow({ url: "https://shop.example/pricing?plan=pro" });
    const eye = tracker(win);
    const first = eye.track("page interaction", "cta click", { element: "chat bubble" });
    const second = eye.track("form interaction", "submit", { form: "signup" });
    assert.equal(win.requests.length, 0); // batched: sent after the flush interval
    await win.advance(1000);

    assert.equal(win.requests.length, 1);
    const [request] = win.requests;
    assert.equal(request.url, `${HOST}/events/`);
    assert.equal(request.method, "POST");
    assert.equal(request.headers["Content-Type"], "text/plain");
    assert.equal(request.keepalive, true);
    assert.equal(request.json.writeKey, KEY);
    const [a, b] = request.json.batch;
    assert.deepEqual([a.event_id, b.event_id], [first, second]);
    assert.match(a.event_id, UUID_V7); // the time first, for the store's index
    assert.equal(millisecondsOf(a.event_id), Date.parse(a.timestamp));
    assert.notEqual(a.event_id, b.event_id);
    assert.equal(a.session_id, eye.sessionId());
    assert.equal(b.session_id, a.session_id);
    assert.deepEqual(a.data, { host: "shop.example", path: "/pricing", element: "chat bubble" });
    assert.equal(a.category, "page interaction");
    assert.equal(a.name, "cta click");
    assert.equal(a.timestamp, new Date(win.site.clock - 1000).toISOString());
    assert.equal(eye.pending(), 0);
  });

  test("a full batch is sent without waiting for the interval", async () => {
    const win = fakeWindow();
    const eye = tracker(win, { ...QUIET, batchSize: 3 });
    for (let i = 0; i < 3; i++) eye.track("c", "n", { i });
    await win.advance(0);
    assert.equal(events(win.requests).length, 3);
  });

  test("calls made before init are recorded once it runs", async () => {
    const win = fakeWindow();
    const eye = createTracker(win);
    eye.track("c", "early", { a: 1 });
    eye.init(KEY, QUIET);
    await eye.flush();
    assert.deepEqual(events(win.requests).map((e) => e.name), ["early"]);
  });

  test("bad arguments are refused where they are made", () => {
    const eye = tracker(fakeWindow());
    assert.throws(() => eye.track("", "n"), TypeError);
    assert.throws(() => eye.track("c", "x".repeat(101)), TypeError);
    assert.throws(() => eye.track("c", "n", [1]), TypeError);
    assert.throws(() => createTracker(fakeWindow()).init(""), TypeError);
  });
});

describe("sessions", () => {
  test("are kept across the pages of a site and shared by its applications", () => {
    const site = new Site();
    const shop = tracker(fakeWindow({ site }));
    const blog = createTracker(fakeWindow({ site, url: "https://shop.example/blog/" }));
    blog.init("eye_wk_blog", QUIET);
    assert.match(shop.sessionId(), UUID);
    assert.equal(blog.sessionId(), shop.sessionId());
  });

  test("are renewed after 30 minutes without an event, not before", async () => {
    const win = fakeWindow();
    const eye = tracker(win);
    const first = eye.sessionId();
    eye.track("c", "n", { a: 1 });
    await win.advance(29 * 60000);
    eye.track("c", "n", { a: 2 });
    assert.equal(eye.sessionId(), first);
    await win.advance(30 * 60000 + 1);
    assert.notEqual(eye.sessionId(), first);
  });

  test("last as long as sessionMinutes says", async () => {
    const win = fakeWindow();
    const eye = tracker(win, { ...QUIET, sessionMinutes: 60 });
    const first = eye.sessionId();
    eye.track("c", "n", { a: 1 });
    await win.advance(45 * 60000);
    assert.equal(eye.sessionId(), first);
  });

  test("are renewed by reset(), for every page of the site", () => {
    const site = new Site();
    const one = tracker(fakeWindow({ site }));
    const other = tracker(fakeWindow({ site }));
    const before = one.sessionId();
    const after = one.reset();
    assert.notEqual(after, before);
    assert.equal(other.sessionId(), after);
  });

  test("set the cookie's domain when asked, so that subdomains share them", () => {
    const win = fakeWindow();
    tracker(win, { ...QUIET, cookieDomain: "shop.example" }).sessionId();
    const { attributes } = win.site.cookies.get("the_eye_session");
    assert.ok(attributes.includes("domain=shop.example"));
    assert.ok(attributes.includes("secure"));
  });
});

describe("automatic capture", () => {
  test("records a page view on init and on each history change of a single-page app", async () => {
    const win = fakeWindow({ url: "https://shop.example/" });
    const eye = tracker(win, { host: HOST });
    win.history.pushState({}, "", "/products?page=2");
    win.history.replaceState({}, "", "/products?page=2"); // same page: no view
    win.go("/");
    win.dispatchEvent(new FakeEvent("popstate"));
    await eye.flush();

    const views = events(win.requests);
    assert.deepEqual(
      views.map((e) => [e.category, e.name, e.data.path]),
      [
        ["page interaction", "pageview", "/"],
        ["page interaction", "pageview", "/products"],
        ["page interaction", "pageview", "/"],
      ],
    );
    assert.equal(views[0].data.referrer, "https://search.example/?q=shop");
    assert.equal(views[0].data.title, "Shop");
    assert.equal(views[1].data.search, "?page=2");
    assert.equal(views[2].data.referrer, "https://shop.example/products?page=2");
  });

  test("a route in the hash is a page, an anchor is not", async () => {
    const win = fakeWindow({ url: "https://shop.example/app" });
    const eye = tracker(win, { host: HOST });
    win.go("#section-2");
    win.dispatchEvent(new FakeEvent("hashchange"));
    win.go("#/settings");
    win.dispatchEvent(new FakeEvent("hashchange"));
    await eye.flush();
    assert.deepEqual(events(win.requests).map((e) => e.data.hash), [undefined, "#/settings"]);
  });

  test("page views are off when asked", async () => {
    const win = fakeWindow();
    const eye = tracker(win, { host: HOST, pageviews: false });
    win.history.pushState({}, "", "/other");
    await eye.flush();
    assert.equal(win.requests.length, 0);
  });

  test("records clicks on links and buttons with their tag, id and text", async () => {
    const win = fakeWindow({ url: "https://shop.example/cart" });
    const eye = tracker(win, { ...QUIET, clicks: true });
    const button = element("button", { id: "buy", text: "  Buy\n now " });
    const icon = element("span", { text: "", parent: button });
    win.document.dispatchEvent(new FakeEvent("click", { target: icon }));
    const link = element("a", { text: "Help", attrs: { href: "/help" } });
    win.document.dispatchEvent(new FakeEvent("click", { target: link }));
    const text = element("p", { text: "not a control" });
    win.document.dispatchEvent(new FakeEvent("click", { target: text }));
    await eye.flush();

    assert.deepEqual(
      events(win.requests).map((e) => [e.name, e.data]),
      [
        ["click", { host: "shop.example", path: "/cart", tag: "button", id: "buy", text: "Buy now" }],
        ["click", { host: "shop.example", path: "/cart", tag: "a", text: "Help" }],
      ],
    );
  });

  test("records form submits without anything typed into the form", async () => {
    const win = fakeWindow({ url: "https://shop.example/signup" });
    const eye = tracker(win, { ...QUIET, forms: true });
    const form = element("form", { id: "signup", text: "Email jo@example.com", attrs: { name: "join" } });
    const submit = element("input", { type: "submit", value: "Join", parent: form });
    win.document.dispatchEvent(new FakeEvent("submit", { target: form, submitter: submit }));
    await eye.flush();

    const [event] = events(win.requests);
    assert.equal(event.category, "form interaction");
    assert.equal(event.name, "submit");
    assert.deepEqual(event.data, {
      host: "shop.example",
      path: "/signup",
      tag: "form",
      id: "signup",
      name: "join",
      submitter: { tag: "input", text: "Join" },
    });
    assert.ok(!JSON.stringify(event).includes("jo@example.com"));
  });

  test("clicks and submits are not recorded unless enabled", async () => {
    const win = fakeWindow();
    const eye = tracker(win);
    win.document.dispatchEvent(new FakeEvent("click", { target: element("button", { text: "x" }) }));
    win.document.dispatchEvent(new FakeEvent("submit", { target: element("form") }));
    await eye.flush();
    assert.equal(win.requests.length, 0);
  });
});

describe("delivery", () => {
  test("retries network errors, 5xx and 429 with doubling waits, at least Retry-After, with the same ids", async (t) => {
    t.mock.method(Math, "random", () => 1); // no jitter: waits of 1, 2, 4, 8 s
    const win = fakeWindow();
    win.answers.push("network error", 500, { status: 503, headers: { "Retry-After": "20" } }, 429);
    const eye = tracker(win);
    const id = eye.track("c", "n", { a: 1 });
    const sentAfter = async (ms) => {
      await win.advance(ms - 1);
      const before = win.requests.length;
      await win.advance(1);
      return [before, win.requests.length];
    };
    assert.deepEqual(await sentAfter(1000), [0, 1]); // the network error
    assert.deepEqual(await sentAfter(1000), [1, 2]); // the 500
    assert.deepEqual(await sentAfter(2000), [2, 3]); // the 503, which asks for 20 s, not 4
    assert.deepEqual(await sentAfter(20000), [3, 4]); // the 429
    assert.deepEqual(await sentAfter(8000), [4, 5]); // accepted
    await win.advance(120000);
    assert.equal(win.requests.length, 5);
    assert.deepEqual(new Set(events(win.requests).map((e) => e.event_id)), new Set([id]));
    assert.equal(eye.pending(), 0);
    assert.deepEqual(savedQueues(win.site), []);
  });

  test("waits are jittered down to half", async (t) => {
    t.mock.method(Math, "random", () => 0);
    const win = fakeWindow();
    win.answers.push(503, 503);
    tracker(win).track("c", "n", { a: 1 });
    await win.advance(1000 + 500);
    await win.advance(1000);
    assert.equal(win.requests.length, 3);
  });

  test("a refused batch (400, 401, 413) is dropped, not retried", async () => {
    const win = fakeWindow();
    win.answers.push(401);
    const eye = tracker(win);
    eye.track("c", "n", { a: 1 });
    await win.advance(1000);
    await win.advance(120000);
    assert.equal(win.requests.length, 1);
    assert.equal(eye.pending(), 0);
    assert.match(win.warnings[0], /refused 1 events \(401\)/);
  });

  test("waits while offline, keeps the events in localStorage, and sends them when back", async () => {
    const win = fakeWindow({ online: false });
    const eye = tracker(win);
    const ids = [eye.track("c", "a", { a: 1 }), eye.track("c", "b", { b: 1 })];
    await win.advance(300000);
    assert.equal(win.requests.length, 0);
    const [[, saved]] = savedQueues(win.site);
    assert.deepEqual(JSON.parse(saved).events.map((e) => e.event_id), ids);

    win.navigator.onLine = true;
    win.dispatchEvent(new FakeEvent("online"));
    await win.advance(0);
    assert.deepEqual(events(win.requests).map((e) => e.event_id), ids);
    assert.deepEqual(savedQueues(win.site), []);
  });

  test("sends at once when the page is hidden", async () => {
    const win = fakeWindow();
    const eye = tracker(win);
    eye.track("c", "n", { a: 1 });
    win.document.visibilityState = "hidden";
    win.document.dispatchEvent(new FakeEvent("visibilitychange"));
    await win.advance(0);
    assert.equal(events(win.requests).length, 1);
  });

  test("a closing page beacons its queue and leaves it to the next page, which sends it again", async () => {
    const site = new Site();
    const closing = fakeWindow({ site });
    const id = tracker(closing).track("c", "last", { a: 1 });
    closing.dispatchEvent(new FakeEvent("pagehide"));
    assert.deepEqual((await beaconEvents(closing)).map((e) => e.event_id), [id]);
    assert.equal(closing.beacons[0].url, `${HOST}/events/`);
    assert.equal(closing.beacons[0].blob.type, "text/plain");
    assert.equal(savedQueues(site).length, 1);

    const next = fakeWindow({ site });
    const eye = tracker(next);
    await eye.flush();
    assert.deepEqual(events(next.requests).map((e) => e.event_id), [id]);
    assert.deepEqual(savedQueues(site), []);
  });

  test("without sendBeacon a closing page uses fetch with keepalive", async () => {
    const win = fakeWindow();
    delete win.navigator.sendBeacon;
    tracker(win).track("c", "n", { a: 1 });
    win.dispatchEvent(new FakeEvent("pagehide"));
    await win.advance(0);
    assert.equal(win.requests.length, 1);
    assert.equal(win.requests[0].keepalive, true);
  });

  test("the queue of a page still open is left to it; a page silent for a minute is taken over", async () => {
    const site = new Site();
    const offline = fakeWindow({ site, online: false });
    const id = tracker(offline).track("c", "n", { a: 1 });

    const sibling = fakeWindow({ site });
    await tracker(sibling).flush();
    assert.equal(sibling.requests.length, 0);

    site.clock += 61000;
    const later = fakeWindow({ site });
    await tracker(later).flush();
    assert.deepEqual(events(later.requests).map((e) => e.event_id), [id]);
  });

  test("the queue is bounded by maxQueue; what does not fit is dropped and counted", async () => {
    const win = fakeWindow({ online: false });
    const eye = tracker(win, { ...QUIET, maxQueue: 3 });
    for (let i = 0; i < 5; i++) eye.track("c", "n", { i });
    assert.equal(eye.pending(), 3);
    assert.equal(eye.dropped, 2);
    const [[, saved]] = savedQueues(win.site);
    assert.equal(JSON.parse(saved).events.length, 3);
  });

  test("batches stay under the size The Eye reads with the key in the body", async () => {
    const win = fakeWindow();
    const eye = tracker(win, { ...QUIET, batchSize: 100 });
    for (let i = 0; i < 6; i++) eye.track("c", "n", { text: "x".repeat(20000) });
    await eye.flush();
    assert.ok(win.requests.length >= 3);
    for (const request of win.requests) assert.ok(Buffer.byteLength(request.body) <= 60000);
    assert.equal(events(win.requests).length, 6);
  });
});

describe("privacy", () => {
  test("optOut() records nothing and forgets what waits; optIn() records again", async () => {
    const win = fakeWindow({ online: false });
    const eye = tracker(win);
    eye.track("c", "before", { a: 1 });
    eye.optOut();
    assert.equal(eye.pending(), 0);
    assert.deepEqual(savedQueues(win.site), []);
    assert.equal(eye.track("c", "during", { a: 1 }), undefined);
    assert.ok(eye.optedOut());
    eye.optIn();
    eye.track("c", "after", { a: 1 });
    win.navigator.onLine = true;
    await eye.flush();
    assert.deepEqual(events(win.requests).map((e) => e.name), ["after"]);
  });

  test("Do Not Track and Global Privacy Control are honoured when the site asks", () => {
    const dnt = fakeWindow();
    dnt.navigator.doNotTrack = "1";
    assert.equal(tracker(dnt).track("c", "n", { a: 1 }) === undefined, false);
    const asked = fakeWindow();
    asked.navigator.doNotTrack = "1";
    assert.equal(tracker(asked, { ...QUIET, respectDoNotTrack: true }).track("c", "n", { a: 1 }), undefined);
    const gpc = fakeWindow();
    gpc.navigator.globalPrivacyControl = true;
    assert.equal(tracker(gpc, { ...QUIET, respectDoNotTrack: true }).track("c", "n", { a: 1 }), undefined);
  });
});

describe("script tag", () => {
  test("data attributes are options, The Eye that served the script the host", () => {
    const script = {
      src: "https://eye.example/sdk/eye.js",
      dataset: { writeKey: KEY, clicks: "true", forms: "", pageviews: "false", sessionMinutes: "60", cookieDomain: "shop.example" },
    };
    assert.deepEqual(scriptOptions(script), {
      host: "https://eye.example",
      clicks: true,
      forms: true,
      pageviews: false,
      sessionMinutes: 60,
      cookieDomain: "shop.example",
    });
  });

  test("starts from data-write-key, then runs the calls queued before the script", async () => {
    const win = fakeWindow();
    win.theEye = [["track", "c", "queued", { a: 1 }], ["flush"]];
    const script = { src: `${HOST}/sdk/eye.js`, dataset: { writeKey: KEY, pageviews: "false" } };
    const eye = start(createTracker(win), win, script);
    assert.equal(win.theEye, eye);
    await win.advance(0);
    assert.deepEqual(events(win.requests).map((e) => e.name), ["queued"]);
    win.theEye.push(["track", "c", "pushed", { a: 1 }]); // the same call, once loaded
    await eye.flush();
    assert.deepEqual(events(win.requests).map((e) => e.name), ["queued", "pushed"]);
    assert.throws(() => win.theEye.push(["send", "x"]), TypeError);
  });
});
