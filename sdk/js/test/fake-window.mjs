// A browser window small enough to read: the parts of the DOM the tracker uses, a clock and
// timers the test moves, a cookie jar and localStorage that pages of one site share, and a
// `fetch` that answers what the test tells it to.

export class Site {
  constructor() {
    this.cookies = new Map(); // name -> {value, expires}
    this.storage = new Map();
    this.clock = Date.UTC(2024, 4, 1, 9, 0, 0);
  }
}

class Storage {
  constructor(map) {
    this.map = map;
  }
  get length() {
    return this.map.size;
  }
  key(i) {
    return [...this.map.keys()][i] ?? null;
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

export class FakeEvent extends Event {
  constructor(type, fields = {}) {
    super(type);
    for (const [name, value] of Object.entries(fields)) {
      Object.defineProperty(this, name, { value });
    }
  }
}

export function element(tag, { id = "", text = "", attrs = {}, type, value, parent = null } = {}) {
  return {
    tagName: tag.toUpperCase(),
    id,
    innerText: text,
    textContent: text,
    type,
    value,
    parentElement: parent,
    getAttribute: (name) => (name in attrs ? attrs[name] : null),
  };
}

export function fakeWindow({ site = new Site(), url = "https://shop.example/", online = true } = {}) {
  const win = new EventTarget();
  const timers = [];
  let nextTimer = 1;
  win.site = site;
  win.requests = [];
  win.beacons = [];
  win.answers = []; // each: a status, {status, headers}, or "network error"; 202 when empty
  win.warnings = [];

  win.Date = { now: () => site.clock };
  win.setTimeout = (fn, delay = 0) => {
    timers.push({ id: nextTimer, at: site.clock + Math.max(0, delay), fn });
    return nextTimer++;
  };
  win.clearTimeout = (id) => {
    const index = timers.findIndex((t) => t.id === id);
    if (index >= 0) timers.splice(index, 1);
  };
  // Moves the clock by `ms`, running each timer due on the way and what it awaits.
  win.advance = async (ms = 0) => {
    const end = site.clock + ms;
    await settle();
    for (;;) {
      timers.sort((a, b) => a.at - b.at || a.id - b.id);
      if (!timers.length || timers[0].at > end) break;
      const timer = timers.shift();
      site.clock = Math.max(site.clock, timer.at);
      timer.fn();
      await settle();
    }
    site.clock = end;
  };

  win.fetch = async (target, options) => {
    const request = { url: target, ...options, json: JSON.parse(options.body) };
    win.requests.push(request);
    const answer = win.answers.length ? win.answers.shift() : 202;
    if (answer === "network error") throw new TypeError("Failed to fetch");
    const { status, headers = {} } = typeof answer === "number" ? { status: answer } : answer;
    return { status, ok: status < 300, headers: new Headers(headers) };
  };

  win.navigator = {
    onLine: online,
    sendBeacon: (target, blob) => {
      win.beacons.push({ url: target, blob });
      return true;
    },
  };
  win.Blob = Blob;
  win.TextEncoder = TextEncoder;
  win.console = { warn: (text) => win.warnings.push(text) };
  win.localStorage = new Storage(site.storage);

  const location = {};
  const go = (href) => {
    const parsed = new URL(href, location.href || undefined);
    Object.assign(location, {
      href: parsed.href,
      protocol: parsed.protocol,
      host: parsed.host,
      pathname: parsed.pathname,
      search: parsed.search,
      hash: parsed.hash,
    });
  };
  go(url);
  win.location = location;
  win.go = go;
  win.history = {
    pushState: (_state, _title, href) => go(href),
    replaceState: (_state, _title, href) => go(href),
  };

  const document = new EventTarget();
  document.title = "Shop";
  document.referrer = "https://search.example/?q=shop";
  document.visibilityState = "visible";
  Object.defineProperty(document, "cookie", {
    get() {
      const live = [...site.cookies].filter(([, c]) => c.expires > site.clock);
      return live.map(([name, c]) => `${name}=${c.value}`).join("; ");
    },
    set(text) {
      const [pair, ...attributes] = text.split("; ");
      const [name, value] = pair.split("=");
      const maxAge = attributes.find((a) => a.startsWith("max-age="));
      const seconds = maxAge ? Number(maxAge.slice(8)) : 86400;
      site.cookies.set(name, { value, expires: site.clock + seconds * 1000, attributes });
    },
  });
  win.document = document;
  return win;
}

// Lets every promise the tracker started settle (answers, their callbacks).
export async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function events(requests) {
  return requests.flatMap((r) => r.json.batch);
}

export async function beaconEvents(win) {
  const bodies = await Promise.all(win.beacons.map((b) => b.blob.text()));
  return bodies.flatMap((text) => JSON.parse(text).batch);
}
