/*! The Eye browser tracker 0.1.0 (MIT). Built from sdk/js/src/eye.js. */
/*
 * The Eye's browser tracker: sends a website's events to The Eye's `POST /events/`.
 *
 * Contract:
 * - Every event gets its own `event_id` (a version 7 UUID, time first) when it is recorded,
 *   so a batch sent twice (a retry, a page closing while a request was in flight) is stored
 *   once.
 * - Sessions: a UUID made here, kept in a first-party cookie (shared by the site's pages,
 *   tabs and applications; across subdomains with `cookieDomain`), renewed after
 *   `sessionMinutes` without an event and on `reset()`.
 * - Delivery is at least once for what the page can keep: events wait in memory and in
 *   localStorage (bounded by `maxQueue`) until The Eye answers 2xx; network errors, 408, 429
 *   and 5xx are retried with exponential backoff and jitter, at least `Retry-After` later;
 *   other 4xx drop the batch. Nothing is sent while the browser is offline; everything
 *   waiting is sent when it comes back. When the page is hidden the queue is sent at once;
 *   when it is closed, with `sendBeacon` (or `fetch` with `keepalive`), and what is left is
 *   sent by the next page of the site.
 * - Requests are CORS "simple" (`text/plain`, the write key in the body), so they need no
 *   preflight; The Eye must list the site in THE_EYE_CORS_ORIGINS for the tracker to read
 *   its answers.
 * - Clicks and form submits record the element's tag, id and text and the page's path,
 *   never what was typed into a form.
 * - Nothing is recorded after `optOut()`, nor under Do Not Track or Global Privacy Control
 *   when `respectDoNotTrack` is set.
 *
 * No dependency. `createTracker(env)` takes the window to work in (the global one by
 * default), so that the tests can give it a fake one.
 */

export const VERSION = "0.1.0";

const DEFAULTS = {
  host: "",
  pageviews: true,
  clicks: false,
  forms: false,
  sessionMinutes: 30,
  cookieDomain: "",
  respectDoNotTrack: false,
  batchSize: 50,
  flushInterval: 1000,
  maxQueue: 1000,
  maxBackoff: 60000,
};

// The Eye reads a body that carries its write key up to 64 KiB; browsers let a closing page
// send about as much with keepalive.
const MAX_BODY_BYTES = 60000;
const SESSION_COOKIE = "the_eye_session";
const OPT_OUT_COOKIE = "the_eye_opt_out";
const QUEUE_PREFIX = "the_eye_queue_";
// A page's saved queue is taken over by another page once that page closed, or when it has
// not saved for this long (it crashed, or the tab was discarded).
const ORPHANED_AFTER = 60000;
const TEXT_LENGTH = 200;
const API = ["init", "track", "page", "flush", "reset", "sessionId", "optOut", "optIn"];

export function createTracker(env) {
  const win = env || (typeof window === "undefined" ? undefined : window);
  let config = null;
  let early = [];
  let queue = [];
  let sending = 0;
  let inflight = null;
  let timer = null;
  let attempts = 0;
  let retryAt = 0;
  let lastPage = "";
  let memorySession = "";
  const pageKey = QUEUE_PREFIX + uuid();
  const tracker = { version: VERSION, dropped: 0 };

  const now = () => (win.Date || Date).now();
  const doc = () => win.document;

  // A random UUID (version 4), or with `time` (ms) a version 7 one, the time first: event
  // ids made later sort later, so The Eye's index of them grows at its end.
  function uuid(time) {
    const crypto = (env || globalThis).crypto || globalThis.crypto;
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    for (let i = 0; time !== undefined && i < 6; i++) {
      bytes[i] = Math.floor(time / 2 ** (8 * (5 - i))) % 256;
    }
    bytes[6] = (bytes[6] & 0x0f) | (time === undefined ? 0x40 : 0x70);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => (b + 256).toString(16).slice(1)).join("");
    return [0, 8, 12, 16, 20, 32].reduce((parts, end, i, ends) =>
      i ? parts.concat(hex.slice(ends[i - 1], end)) : parts, []).join("-");
  }

  // Cookies and localStorage may be refused (privacy modes, sandboxed frames): the tracker
  // then keeps its state in memory for the life of the page.
  function cookie(name) {
    try {
      const found = doc().cookie.split("; ").find((c) => c.startsWith(name + "="));
      return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
    } catch (_) {
      return "";
    }
  }

  function setCookie(name, value, seconds) {
    let text = `${name}=${encodeURIComponent(value)}; path=/; max-age=${seconds}; samesite=lax`;
    if (config && config.cookieDomain) text += `; domain=${config.cookieDomain}`;
    if (win.location && win.location.protocol === "https:") text += "; secure";
    try {
      doc().cookie = text;
    } catch (_) {
      // refused: memory only
    }
  }

  function storage() {
    try {
      return win.localStorage || null;
    } catch (_) {
      return null;
    }
  }

  function session(touch) {
    const timeout = config.sessionMinutes * 60000;
    const [id, seen] = (cookie(SESSION_COOKIE) || memorySession).split(".");
    const current = id && now() - Number(seen) < timeout ? id : uuid();
    if (touch || current !== id) {
      memorySession = `${current}.${now()}`;
      setCookie(SESSION_COOKIE, memorySession, Math.ceil(timeout / 1000));
    }
    return current;
  }

  function blocked() {
    if (cookie(OPT_OUT_COOKIE) === "1") return true;
    if (!config.respectDoNotTrack) return false;
    const nav = win.navigator || {};
    return nav.globalPrivacyControl === true || [nav.doNotTrack, win.doNotTrack].includes("1");
  }

  function bytes(text) {
    return win.TextEncoder ? new win.TextEncoder().encode(text).length : text.length * 3;
  }

  function save(closed) {
    const store = storage();
    if (!store) return;
    try {
      if (queue.length) {
        store.setItem(pageKey, JSON.stringify({ saved: now(), closed, events: queue }));
      } else {
        store.removeItem(pageKey);
      }
    } catch (_) {
      // full or refused: the events stay in memory
    }
  }

  // The queues other pages of the site left behind: closed while offline, or crashed.
  function adoptOrphans() {
    const store = storage();
    if (!store) return;
    const known = new Set(queue.map((e) => e.event_id));
    for (let i = store.length - 1; i >= 0; i--) {
      const key = store.key(i);
      if (!key || !key.startsWith(QUEUE_PREFIX) || key === pageKey) continue;
      let saved;
      try {
        saved = JSON.parse(store.getItem(key));
      } catch (_) {
        saved = null;
      }
      if (saved && !saved.closed && now() - saved.saved < ORPHANED_AFTER) continue;
      store.removeItem(key);
      for (const event of (saved && saved.events) || []) {
        if (!known.has(event.event_id) && queue.length < config.maxQueue) {
          known.add(event.event_id);
          queue.push(event);
        }
      }
    }
    save(false);
  }

  function body(events) {
    return JSON.stringify({ writeKey: config.writeKey, batch: events });
  }

  // The first events of the queue that fit in one body, at most `size` of them.
  function nextBatch(size) {
    const batch = [];
    let total = bytes(body([]));
    for (const event of queue.slice(0, size)) {
      total += bytes(JSON.stringify(event)) + 1;
      if (batch.length && total > MAX_BODY_BYTES) break;
      batch.push(event);
    }
    return batch;
  }

  function schedule(delay) {
    if (timer !== null) return;
    timer = win.setTimeout(() => {
      timer = null;
      send();
    }, delay);
  }

  function online() {
    return !win.navigator || win.navigator.onLine !== false;
  }

  function backoff(retryAfter) {
    attempts += 1;
    const exponential = Math.min(config.maxBackoff, 1000 * 2 ** (attempts - 1));
    const wait = Math.max(exponential * (0.5 + Math.random() / 2), retryAfter * 1000 || 0);
    retryAt = now() + wait;
    schedule(wait);
  }

  // One request at a time: keepalive requests share a small budget, and the order of the
  // queue is kept. `send()` answers the request under way, if any.
  function send() {
    if (!inflight && config && queue.length && online()) {
      if (now() < retryAt) schedule(retryAt - now());
      else inflight = post().finally(() => (inflight = null));
    }
    return inflight || Promise.resolve();
  }

  async function post() {
    const batch = nextBatch(config.batchSize);
    sending = batch.length;
    let answer = null;
    try {
      answer = await win.fetch(url(), request(body(batch)));
    } catch (_) {
      // a network error: the events stay queued
    }
    sending = 0;
    const status = answer ? answer.status : 0;
    if (!status || status >= 500 || status === 408 || status === 429) {
      return backoff(answer ? Number(answer.headers.get("Retry-After")) : 0);
    }
    const sent = new Set(batch.map((e) => e.event_id));
    queue = queue.filter((e) => !sent.has(e.event_id));
    if (status >= 400) warn(`The Eye refused ${batch.length} events (${status})`);
    attempts = 0;
    save(false);
    if (queue.length) schedule(0);
  }

  function url() {
    return `${config.host}/events/`;
  }

  function request(text) {
    return {
      method: "POST",
      body: text,
      headers: { "Content-Type": "text/plain" },
      keepalive: true,
      credentials: "omit",
    };
  }

  // The page is going away: send what waits in one last request the browser finishes on
  // its own, and keep it all for the next page in case that request is lost.
  function sendBeforeLeaving() {
    if (!config) return;
    save(true);
    const batch = nextBatch(config.maxQueue);
    if (!batch.length || !online()) return;
    const text = body(batch);
    const nav = win.navigator || {};
    try {
      if (nav.sendBeacon && nav.sendBeacon(url(), new win.Blob([text], { type: "text/plain" }))) {
        return;
      }
      win.fetch(url(), request(text)).catch(() => {});
    } catch (_) {
      // kept for the next page
    }
  }

  function warn(message) {
    if (win.console) win.console.warn(`[the-eye] ${message}`);
  }

  function record(category, name, data) {
    if (blocked()) return undefined;
    const loc = win.location || {};
    const event = {
      event_id: uuid(now()),
      session_id: session(true),
      category,
      name,
      data: { host: loc.host, path: loc.pathname, ...data },
      timestamp: new Date(now()).toISOString(),
    };
    if (bytes(JSON.stringify(event)) > MAX_BODY_BYTES - 256) {
      warn(`dropped "${name}": larger than ${MAX_BODY_BYTES} bytes`);
      tracker.dropped += 1;
      return undefined;
    }
    if (queue.length >= config.maxQueue) {
      tracker.dropped += 1;
      return undefined;
    }
    queue.push(event);
    save(false);
    if (queue.length - sending >= config.batchSize) send();
    else schedule(config.flushInterval);
    return event.event_id;
  }

  // A single-page app's route may live in the hash (`#/settings`); other hashes are anchors.
  function hashRoute() {
    const hash = (win.location || {}).hash || "";
    return /^#!?\//.test(hash) ? hash : "";
  }

  function pagePath() {
    const loc = win.location || {};
    return `${loc.pathname}${loc.search || ""}${hashRoute()}`;
  }

  function pageview(data) {
    const loc = win.location || {};
    const referrer = lastPage ? `${loc.protocol}//${loc.host}${lastPage}` : doc().referrer;
    lastPage = pagePath();
    return record("page interaction", "pageview", {
      title: doc().title,
      ...(loc.search ? { search: loc.search } : {}),
      ...(hashRoute() ? { hash: hashRoute() } : {}),
      ...(referrer ? { referrer } : {}),
      ...data,
    });
  }

  function text(element) {
    const tag = element.tagName.toLowerCase();
    const input = tag === "input" && ["submit", "button", "reset"].includes(element.type);
    const shown = input ? element.value : element.innerText || element.textContent;
    const label = shown || element.getAttribute("aria-label") || "";
    return label.trim().replace(/\s+/g, " ").slice(0, TEXT_LENGTH);
  }

  function describe(element, labelled) {
    const described = { tag: element.tagName.toLowerCase() };
    if (element.id) described.id = element.id;
    const label = labelled && text(element);
    if (label) described.text = label;
    return described;
  }

  function clickable(element) {
    const tag = element.tagName.toLowerCase();
    if (tag === "a" || tag === "button" || element.getAttribute("role") === "button") return true;
    return tag === "input" && ["submit", "button", "reset"].includes(element.type);
  }

  function onClick(event) {
    for (let el = event.target; el && el.tagName; el = el.parentElement) {
      if (clickable(el)) {
        record("page interaction", "click", describe(el, true));
        return;
      }
    }
  }

  function onSubmit(event) {
    const form = event.target;
    if (!form || !form.tagName) return;
    const data = describe(form, false); // a form's text would include what was typed
    const name = form.getAttribute("name");
    if (name) data.name = name;
    if (event.submitter && event.submitter.tagName) data.submitter = describe(event.submitter, true);
    record("form interaction", "submit", data);
  }

  function watchHistory() {
    const history = win.history;
    const changed = () => {
      if (pagePath() !== lastPage) pageview();
    };
    for (const method of ["pushState", "replaceState"]) {
      const original = history && history[method];
      if (typeof original !== "function") continue;
      history[method] = function (...args) {
        const result = original.apply(this, args);
        changed();
        return result;
      };
    }
    win.addEventListener("popstate", changed);
    win.addEventListener("hashchange", changed);
  }

  function listen() {
    const d = doc();
    if (config.clicks) d.addEventListener("click", onClick, true);
    if (config.forms) d.addEventListener("submit", onSubmit, true);
    if (config.pageviews) watchHistory();
    d.addEventListener("visibilitychange", () => {
      if (d.visibilityState === "hidden") {
        retryAt = 0;
        send();
      }
    });
    win.addEventListener("pagehide", sendBeforeLeaving);
    // bfcache brings the page back: its queue is its own again, and may wait.
    win.addEventListener("pageshow", (event) => {
      if (event.persisted) save(false);
    });
    win.addEventListener("online", () => {
      attempts = 0;
      retryAt = 0;
      send();
    });
  }

  tracker.init = (writeKey, options) => {
    if (config) return tracker;
    if (typeof writeKey !== "string" || !writeKey) {
      throw new TypeError("theEye.init needs a write key");
    }
    config = { ...DEFAULTS, ...options, writeKey };
    config.host = String(config.host).replace(/\/+$/, "");
    listen();
    adoptOrphans();
    if (queue.length) schedule(0);
    const calls = early;
    early = [];
    if (config.pageviews) pageview();
    for (const [method, args] of calls) tracker[method](...args);
    return tracker;
  };

  tracker.track = (category, name, data) => {
    for (const [field, value] of [["category", category], ["name", name]]) {
      if (typeof value !== "string" || !value || value.length > 100) {
        throw new TypeError(`theEye.track: ${field} must be a string of 1 to 100 characters`);
      }
    }
    if (data !== undefined && (data === null || typeof data !== "object" || Array.isArray(data))) {
      throw new TypeError("theEye.track: data must be an object");
    }
    if (!config) return void early.push(["track", [category, name, data]]);
    return record(category, name, data);
  };

  tracker.page = (data) => {
    if (!config) return void early.push(["page", [data]]);
    return pageview(data);
  };

  // Sends everything waiting now; resolves once it is sent, or a request failed (the
  // events then wait for their retry).
  tracker.flush = async () => {
    retryAt = 0;
    for (let left = Infinity; queue.length && queue.length < left; ) {
      left = queue.length;
      await send();
      if (inflight || now() < retryAt || !online()) break;
    }
  };

  tracker.reset = () => {
    memorySession = "";
    setCookie(SESSION_COOKIE, "", 0);
    return tracker.sessionId();
  };

  tracker.sessionId = () => (config ? session(false) : undefined);

  tracker.optOut = () => {
    setCookie(OPT_OUT_COOKIE, "1", 5 * 365 * 86400);
    queue = [];
    save(false);
  };

  tracker.optIn = () => setCookie(OPT_OUT_COOKIE, "", 0);

  tracker.optedOut = () => (config ? blocked() : false);

  tracker.pending = () => queue.length;

  // `(window.theEye = window.theEye || []).push([method, ...arguments])` works before the
  // script has loaded (an array keeps the call) and after (the tracker makes it).
  tracker.push = ([method, ...args]) => {
    if (!API.includes(method)) throw new TypeError(`theEye has no method ${method}`);
    return tracker[method](...args);
  };

  return tracker;
}

// The options a `<script src=".../sdk/eye.js" data-write-key=...>` tag gives in its
// `data-*` attributes (`data-session-minutes="60"` is `sessionMinutes: 60`), with The Eye
// that served the script as the host unless `data-host` says otherwise.
export function scriptOptions(script) {
  const options = { host: script.src ? new URL(script.src).origin : "" };
  for (const [name, value] of Object.entries(script.dataset)) {
    if (name === "writeKey") continue;
    const number = Number(value);
    options[name] = value === "true" || value === "" ? true : value === "false" ? false
      : value.trim() && !Number.isNaN(number) ? number : value;
  }
  return options;
}

// Starts the tracker a page loads with a script tag: from the tag's `data-write-key`, and
// the calls the page made before the script ran (`window.theEye` as an array of
// `[method, ...arguments]`).
export function start(tracker, win, script) {
  const waiting = win.theEye;
  win.theEye = tracker;
  const key = script && script.dataset && script.dataset.writeKey;
  if (key) tracker.init(key, scriptOptions(script));
  for (const call of Array.isArray(waiting) ? waiting : []) tracker.push(call);
  return tracker;
}

export const theEye = createTracker();
