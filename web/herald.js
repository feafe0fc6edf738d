// Herald browser client: live notifications over WebSocket with a
// Server-Sent Events fallback, resume by cursor, popups coordinated across
// tabs, an in-page toast fallback, acks, and Web Push registration.
// ES modules, no build step: this one, with herald-util.js,
// herald-storage.js and herald-toast.js beside it. Types: herald.d.ts.

import {
  activated, cursorAfter, cursorSeq, expiresWithin, fromBase64url, openableURL, sameBytes, subscriptionBody,
  tokenSubject, withTimeout,
} from './herald-util.js';
import { claimPopup, idb } from './herald-storage.js';
import { removeToast, showToast } from './herald-toast.js';

/**
 * @typedef {object} HeraldNotification
 * @property {string} id
 * @property {string} [cursor]
 * @property {string} [user]
 * @property {string} [type]
 * @property {string} [title]
 * @property {string} [body]
 * @property {string} [icon]
 * @property {string} [url]
 * @property {string} [tag]
 * @property {string} [urgency]
 * @property {Record<string, any>} [data]
 * @property {string} [created_at]
 */

/**
 * @typedef {object} HeraldOptions
 * @property {string} [url] Base URL of the Herald server; default: this page's origin.
 * @property {string} [token] A user token (JWT).
 * @property {() => string | Promise<string>} [getToken] Called for a token at the first connect and whenever the server refuses the current one.
 * @property {'auto' | 'ws' | 'sse'} [transport] 'auto' (default) tries WebSocket and falls back to SSE for the rest of the session.
 * @property {string} [user] The current user; default: the token's sub claim.
 * @property {boolean} [popups] Raise Notification API popups (default true).
 * @property {boolean | ((n: HeraldNotification) => void)} [toast] In-page fallback when popups are not permitted: true (default) for the built-in toast, false for none, or a function that renders one.
 * @property {number} [minDelay] First reconnect delay cap, ms (default 500).
 * @property {number} [maxDelay] Largest reconnect delay, ms (default 30000).
 * @property {number} [wsFailures] WebSocket attempts that fail before opening, while the server answers HTTP, before falling back to SSE (default 2).
 * @property {'all' | 'latest-per-tag' | 'none'} [catchUp] Popups for what a resumed connection replays (missed while away): 'latest-per-tag' (default) the most recent of each tag (untagged ones count as one tag), 'all' every one, 'none' none. Events and the inbox get every notification either way.
 */

const SEEN_MAX = 1000; // ids remembered per tab to drop duplicates
const ACK_DELAY = 100; // ms to batch SSE acks
const STABLE_AFTER = 5000; // ms a connection must live before backoff resets
const CATCH_UP_QUIET = 500; // ms without a replayed notification that end a catch-up
const PUSH_TIMEOUT = 30_000; // ms subscribePush waits for the service worker and the push service

/** Herald client. Events: notification, retract, reset, state, toast, click, error. */
export class Herald extends EventTarget {
  /** @type {Required<Pick<HeraldOptions,'transport'|'popups'|'minDelay'|'maxDelay'|'wsFailures'>> & HeraldOptions} */
  #opts;
  #base;
  /** @type {string | null} */ #token = null;
  /** @type {string | null} */ #user = null;
  /** @type {string | null} */ #cursor = null;
  #cursorLoaded = false;
  #running = false;
  /** @type {'ws' | 'sse'} */ #transport;
  /** @type {WebSocket | EventSource | null} */ #conn = null;
  #state = 'closed';
  #attempt = 0;
  #wsFailed = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #retryTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #stableTimer;
  /** @type {Set<string>} */ #seen = new Set();
  /** @type {Set<string>} */ #pendingAcks = new Set();
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #ackTimer;
  /** @type {Map<string, Notification>} */ #popups = new Map();
  #resumed = false; // the connection being opened resumes from a cursor
  /**
   * The catch-up of a resumed connection: its open time and the popups held
   * back by tag until the replay is over.
   * @type {{openedAt: number, held: Map<string, HeraldNotification>, timer: ReturnType<typeof setTimeout> | undefined} | null}
   */
  #catchUp = null;
  /** The newest unread counts: {total, tags, asOf}. */
  #unreadCount = undefined;
  /** The EventListener that on() made for each function and event type. */
  #listeners = new WeakMap();
  #onOnline = () => { if (this.#running && !this.#conn) this.#reopenNow(); };
  #onSWMessage = (/** @type {MessageEvent} */ e) => {
    const m = e.data;
    if (m?.type === 'herald:click') this.#clicked(m.url, m.notification ?? { id: m.id, url: m.url });
    if (m?.type === 'herald:resubscribe') this.#syncPush().catch(() => {});
  };

  /** @param {HeraldOptions} options */
  constructor(options = {}) {
    super();
    if (!options.token && !options.getToken) throw new TypeError('Herald: token or getToken is required');
    this.#opts = { transport: 'auto', popups: true, toast: true, minDelay: 500, maxDelay: 30000, wsFailures: 2, catchUp: 'latest-per-tag', ...options };
    this.#base = new URL(options.url ?? globalThis.location?.origin ?? '', globalThis.location?.href);
    this.#transport = this.#opts.transport === 'sse' ? 'sse' : 'ws';
    this.#user = options.user ?? null;
    globalThis.navigator?.serviceWorker?.addEventListener('message', this.#onSWMessage);
  }

  /** Connection state: connecting, open, reconnecting or closed. */
  get state() { return this.#state; }
  /** The transport in use or being tried: 'ws' or 'sse'. */
  get transport() { return this.#transport; }
  /** The current user id, once known. */
  get user() { return this.#user; }
  /** The cursor of the last event received. */
  get cursor() { return this.#cursor; }
  /** Notification permission: granted, denied, default or unsupported. */
  get permission() { return 'Notification' in globalThis ? Notification.permission : 'unsupported'; }

  /**
   * Listen to an event; the listener gets the event's detail. Returns a
   * function that removes the listener.
   * @param {string} type
   * @param {(detail: any, event: CustomEvent) => void} fn
   */
  on(type, fn) {
    let byType = this.#listeners.get(fn);
    if (!byType) this.#listeners.set(fn, byType = new Map());
    if (!byType.has(type)) {
      const w = (/** @type {Event} */ e) => fn(/** @type {CustomEvent} */ (e).detail, /** @type {CustomEvent} */ (e));
      byType.set(type, w);
      this.addEventListener(type, w);
    }
    return () => this.off(type, fn);
  }

  /**
   * Remove a listener added with on().
   * @param {string} type
   * @param {(detail: any, event: CustomEvent) => void} fn
   */
  off(type, fn) {
    const w = this.#listeners.get(fn)?.get(type);
    if (!w) return;
    this.removeEventListener(type, w);
    this.#listeners.get(fn)?.delete(type);
  }

  /** Open the live connection; it reconnects by itself until close(). */
  connect() {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    globalThis.addEventListener?.('online', this.#onOnline);
    this.#open();
  }

  /** Close the live connection and stop reconnecting. */
  close() {
    this.#running = false;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#stableTimer);
    globalThis.removeEventListener?.('online', this.#onOnline);
    this.#flushAcks();
    this.#endCatchUp(false);
    const c = this.#conn;
    this.#conn = null;
    c?.close();
    this.#setState('closed');
  }

  /**
   * Close, unsubscribe from Web Push (removing the device), and forget this
   * user's stored cursor. Call it when the user signs out.
   */
  async logout() {
    try { await this.unsubscribePush(); } catch { /* best effort */ }
    this.close();
    try { localStorage.removeItem(this.#cursorKey()); } catch { /* storage unavailable */ }
    this.#cursor = null;
    this.#cursorLoaded = false;
  }

  /**
   * Ask for permission to show popups. Call it from a user gesture (a click).
   * @returns {Promise<NotificationPermission | 'unsupported'>}
   */
  async enableNotifications() {
    if (!('Notification' in globalThis)) return 'unsupported';
    if (Notification.permission !== 'default') return Notification.permission;
    return Notification.requestPermission();
  }

  /**
   * The user's recent notifications, oldest first.
   * @param {{since?: string, limit?: number}} [q]
   * @returns {Promise<{notifications: HeraldNotification[], cursor: string, reset?: boolean}>}
   */
  async fetchInbox({ since, limit } = {}) {
    const p = new URLSearchParams();
    if (since) p.set('since', since);
    if (limit) p.set('limit', String(limit));
    const q = p.toString();
    return this.#api('GET', '/v1/notifications' + (q ? '?' + q : ''));
  }

  /**
   * Register the service worker, subscribe to Web Push and register this
   * browser as a device of the user. Rejects after timeout ms (default
   * 30000) if the browser's push service does not answer: a browser that
   * cannot reach it (headless browsers never can) would leave the promise
   * pending forever.
   * @param {{serviceWorker?: string, scope?: string, timeout?: number}} [o]
   * @returns {Promise<{id: string, subscription: PushSubscription}>}
   */
  async subscribePush({ serviceWorker = '/herald-sw.js', scope, timeout = PUSH_TIMEOUT } = {}) {
    if (!('serviceWorker' in navigator) || !('PushManager' in globalThis)) throw new Error('Herald: Web Push is not supported here');
    const reg = await withTimeout(activated(await navigator.serviceWorker.register(serviceWorker, scope ? { scope } : undefined)), timeout,
      `Herald: the service worker ${serviceWorker} did not activate within ${timeout} ms`);
    const token = await this.#ensureToken();
    const { publicKey } = await this.#api('GET', '/v1/push/vapid-public-key');
    const key = fromBase64url(publicKey);
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameBytes(sub.options.applicationServerKey, key)) {
      await sub.unsubscribe();
      sub = null;
    }
    sub ??= await withTimeout(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), timeout,
      `Herald: the browser's push service did not answer within ${timeout} ms; a browser that cannot reach its push service (headless browsers, some privacy settings and networks) cannot subscribe to Web Push`);
    const prev = await idb.get('config', 'push').catch(() => undefined);
    // The scope tells the server this worker reads declarative push
    // messages, and resolves their click targets.
    const { id } = await this.#api('POST', '/v1/devices', { platform: 'webpush', subscription: subscriptionBody(sub), scope: reg.scope });
    if (prev?.deviceId && prev.deviceId !== id) this.#api('DELETE', '/v1/devices/' + encodeURIComponent(prev.deviceId)).catch(() => {});
    await idb.put('config', 'push', { url: this.#base.href, publicKey, scope: reg.scope, deviceId: id, token });
    return { id, subscription: sub };
  }

  /** Unsubscribe from Web Push and remove this browser's device. */
  async unsubscribePush() {
    const cfg = await idb.get('config', 'push').catch(() => undefined);
    const reg = await navigator.serviceWorker?.getRegistration(cfg?.scope);
    const sub = await reg?.pushManager.getSubscription();
    await sub?.unsubscribe();
    if (cfg?.deviceId) {
      try {
        await this.#api('DELETE', '/v1/devices/' + encodeURIComponent(cfg.deviceId));
      } catch (err) {
        if (/** @type {any} */ (err).status !== 404) throw err;
      }
    }
    await idb.del('config', 'push').catch(() => {});
  }

  // --- connection ---------------------------------------------------------

  async #open() {
    if (!this.#running) return;
    this.#setState(this.#attempt > 0 ? 'reconnecting' : 'connecting');
    let token;
    try {
      token = await this.#ensureToken();
    } catch (err) {
      this.#emit('error', { error: err });
      return this.#retry();
    }
    if (!this.#running || this.#conn) return;
    if (!this.#cursorLoaded && this.#user != null) {
      this.#cursorLoaded = true;
      try { this.#cursor ??= localStorage.getItem(this.#cursorKey()); } catch { /* storage unavailable */ }
      this.#syncPush().catch(() => {});
    }
    this.#resumed = this.#cursor != null;
    if (this.#transport === 'ws') this.#openWS(token);
    else this.#openSSE(token);
  }

  /** @param {string} token */
  #openWS(token) {
    const url = this.#endpoint('/v1/ws', token);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    let opened = false;
    this.#conn = ws;
    ws.onopen = () => { opened = true; this.#connected(); };
    ws.onmessage = (e) => { try { this.#frame(JSON.parse(e.data)); } catch (err) { this.#emit('error', { error: err }); } };
    ws.onclose = (e) => {
      if (this.#conn !== ws) return;
      this.#conn = null;
      this.#dropped(opened, e.code);
    };
  }

  /** @param {string} token */
  #openSSE(token) {
    const es = new EventSource(this.#endpoint('/v1/sse', token));
    let opened = false;
    this.#conn = es;
    es.onopen = () => { opened = true; this.#connected(); };
    /** @param {string} type */
    const on = (type) => es.addEventListener(type, (e) => {
      try {
        const d = JSON.parse(/** @type {MessageEvent} */ (e).data);
        this.#frame(type === 'notification' ? { type, notification: d } : { ...d, type });
      } catch (err) { this.#emit('error', { error: err }); }
    });
    on('notification');
    on('retract');
    on('reset');
    on('read');
    on('seen');
    on('unread');
    on('delivered');
    // EventSource would retry by itself, without a fresh token or backoff:
    // close it and reconnect here instead.
    es.onerror = () => {
      es.close();
      if (this.#conn !== es) return;
      this.#conn = null;
      this.#dropped(opened, 0);
    };
  }

  /**
   * @param {string} path
   * @param {string} token
   */
  #endpoint(path, token) {
    const url = new URL(path, this.#base);
    if (this.#cursor) url.searchParams.set('since', this.#cursor);
    url.searchParams.set('token', token);
    return url;
  }

  #connected() {
    if (this.#transport === 'ws') this.#wsFailed = 0;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = setTimeout(() => { this.#attempt = 0; }, STABLE_AFTER);
    this.#endCatchUp();
    if (this.#resumed && this.#opts.catchUp !== 'all') {
      this.#catchUp = { openedAt: Date.now(), held: new Map(), timer: undefined };
      this.#quietCatchUp();
    }
    this.#setState('open');
    this.#refreshUnread();
  }

  /** Fetches the unread counts (on connect, and when a retraction may have changed them). */
  #refreshUnread() {
    this.#api('GET', '/v1/unread').then((u) => this.#onUnread(u ?? {})).catch(() => {});
  }

  /**
   * A new notification after the counts' position is one more unread: the
   * server sends counts only when something is read, so the client adds
   * what arrives since.
   * @param {HeraldNotification} n
   */
  #countNew(n) {
    const u = this.#unreadCount;
    if (!u || !n.cursor || (u.asOf && !cursorAfter(n.cursor, u.asOf))) return;
    const tags = { ...u.tags };
    if (n.tag) tags[n.tag] = (tags[n.tag] ?? 0) + 1;
    this.#setUnread(u.total + 1, tags, n.cursor);
  }

  /**
   * A connection ended or never opened. Learn why before retrying: a probe
   * tells an expired token (401) from a server that is down, and a server
   * that answers HTTP but not WebSocket from both.
   * @param {boolean} opened
   * @param {number} code WebSocket close code, 0 for SSE
   */
  async #dropped(opened, code) {
    clearTimeout(this.#stableTimer);
    this.#endCatchUp();
    if (!this.#running) return;
    this.#flushAcks();
    if (code === 4008) {
      // The server closed this, the user's oldest session, because a newer
      // one took the user over its session cap: reconnecting would close
      // the next oldest in turn. Stay closed.
      this.#emit('error', { code, error: new Error('closed: too many sessions of this user') });
      this.close();
      return;
    }
    if (code === 4001) this.#token = null; // token expired
    if (!opened) {
      const status = await this.#probe();
      if (!this.#running) return;
      if (status === 0 && await this.#originRefused()) {
        if (!this.#running) return;
        // Retrying cannot help until the server's configuration changes.
        this.close();
        this.#emit('error', {
          status: 403, code: 'origin_not_allowed',
          error: new Error(`Herald: origin not allowed by HERALD_ALLOWED_ORIGINS (add ${location.origin} to it on ${this.#base.origin}); not reconnecting`),
        });
        return;
      }
      if (status === 401) {
        this.#token = null;
        this.#emit('error', { status, error: new Error('token refused') });
      } else if (status >= 200 && status < 300 && this.#transport === 'ws' && this.#opts.transport === 'auto'
        && ++this.#wsFailed >= this.#opts.wsFailures) {
        this.#transport = 'sse'; // WebSocket looks blocked: SSE for the rest of the session
        this.#attempt = 0;
        return this.#retry(0);
      }
    }
    this.#retry();
  }

  /** @returns {Promise<number>} the status of a cheap authenticated request, 0 if none came back */
  async #probe() {
    try {
      const res = await fetch(new URL('/v1/notifications?limit=1', this.#base), {
        headers: { Authorization: 'Bearer ' + this.#token }, cache: 'no-store',
      });
      return res.status;
    } catch {
      return 0;
    }
  }

  /**
   * Whether the server refuses this page's origin. A browser hides why a
   * WebSocket failed, and a refused origin also fails the authenticated
   * probe's CORS preflight; this request needs no preflight, and the
   * server answers it, before any token check, with a refusal the page
   * may read: 403 origin_not_allowed.
   */
  async #originRefused() {
    if (this.#base.origin === globalThis.location?.origin) return false;
    try {
      const res = await fetch(new URL('/v1/sse', this.#base), { cache: 'no-store' });
      if (res.status !== 403) return false;
      const body = await res.json().catch(() => ({}));
      return body?.error?.code === 'origin_not_allowed';
    } catch {
      return false;
    }
  }

  /** Reconnect after a delay with exponential backoff and full jitter. @param {number} [delay] */
  #retry(delay) {
    if (!this.#running) return;
    const cap = Math.min(this.#opts.maxDelay, this.#opts.minDelay * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    const wait = delay ?? Math.random() * cap;
    this.#setState('reconnecting', { delay: Math.round(wait) });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#open(), wait);
  }

  #reopenNow() {
    clearTimeout(this.#retryTimer);
    this.#open();
  }

  /** @param {string} state @param {object} [extra] */
  #setState(state, extra) {
    if (state === this.#state && !extra) return;
    this.#state = state;
    this.#emit('state', { state, transport: this.#transport, ...extra });
  }

  // --- tokens -------------------------------------------------------------

  async #ensureToken() {
    if (this.#token && !expiresWithin(this.#token, 10_000)) return this.#token;
    const t = this.#opts.getToken ? await this.#opts.getToken() : this.#opts.token;
    if (!t) throw new Error('Herald: no token');
    this.#token = t;
    this.#user ??= tokenSubject(t);
    idb.update('config', 'push', (cfg) => cfg && { ...cfg, token: t }).catch(() => {});
    return t;
  }

  /**
   * A JSON request to the server with the user token; one retry with a
   * fresh token after a 401.
   * @param {string} method @param {string} path @param {any} [body]
   */
  async #api(method, path, body) {
    for (let tries = 0; ; tries++) {
      const token = await this.#ensureToken();
      const res = await fetch(new URL(path, this.#base), {
        method,
        headers: { Authorization: 'Bearer ' + token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      if (res.status === 401 && tries === 0 && this.#opts.getToken) {
        this.#token = null;
        continue;
      }
      const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
      if (!res.ok) {
        const err = Object.assign(new Error(data?.error?.message ?? `HTTP ${res.status}`), { status: res.status, code: data?.error?.code });
        throw err;
      }
      return data;
    }
  }

  // --- frames -------------------------------------------------------------

  /** @param {any} msg */
  #frame(msg) {
    switch (msg.type) {
      case 'notification': return this.#onNotification(msg.notification);
      case 'retract': return this.#onRetract(msg);
      case 'read': return this.#onRead(msg);
      case 'seen':
        this.#saveCursor(msg.cursor);
        return this.#emit('seen', { ids: msg.ids, tag: msg.tag, upTo: msg.up_to });
      case 'unread': return this.#onUnread(msg);
      case 'delivered': return this.#saveCursor(msg.cursor); // pushed to devices: nothing to show
      case 'reset':
        this.#saveCursor(msg.cursor ?? '', true);
        return this.#emit('reset', { cursor: msg.cursor ?? '' });
    }
  }

  /** @param {HeraldNotification} n */
  #onNotification(n) {
    if (!n?.id) return;
    this.#saveCursor(n.cursor);
    this.#ack(n.id); // ack repeats too: the first ack may have been lost
    if (this.#seen.has(n.id)) return;
    this.#seen.add(n.id);
    this.#countNew(n);
    if (this.#seen.size > SEEN_MAX) this.#seen.delete(this.#seen.values().next().value);
    this.#emit('notification', n);
    if (this.#opts.popups === false || this.#isOwn(n)) return;
    if (this.#replayed(n)) return this.#hold(n);
    this.#show(n);
  }

  /** @param {HeraldNotification} n */
  #show(n) {
    if (this.permission === 'granted') this.#popup(n);
    else this.#toast(n);
  }

  // --- catch-up -----------------------------------------------------------
  //
  // A connection that resumes from a cursor first receives what was missed
  // (the server replays history after ?since=), then live traffic. The
  // frames do not say which is which; the notification's created_at does:
  // anything created before this connection opened was missed, and the
  // replay comes first, in one burst. So the catch-up lasts until the first
  // notification created after the open, or until CATCH_UP_QUIET passes
  // without one. Clock skew between browser and server only moves that
  // line by the skew, and the catch-up ends with the burst however wrong
  // the clock is.

  /** Whether n is part of the catch-up; a live one ends it. @param {HeraldNotification} n */
  #replayed(n) {
    const c = this.#catchUp;
    if (!c) return false;
    if (Date.parse(n.created_at ?? '') < c.openedAt) return true;
    this.#endCatchUp();
    return false;
  }

  /** Hold back the popup of a replayed notification. @param {HeraldNotification} n */
  #hold(n) {
    const c = this.#catchUp;
    if (!c) return;
    this.#quietCatchUp();
    if (this.#opts.catchUp === 'none') return;
    const tag = n.tag ?? '';
    c.held.delete(tag); // re-inserted last: popups follow the order of the latest
    c.held.set(tag, n);
  }

  #quietCatchUp() {
    const c = this.#catchUp;
    if (!c) return;
    clearTimeout(c.timer);
    c.timer = setTimeout(() => this.#endCatchUp(), CATCH_UP_QUIET);
  }

  /** End the catch-up, showing the popups held back unless show is false. */
  #endCatchUp(show = true) {
    const c = this.#catchUp;
    if (!c) return;
    this.#catchUp = null;
    clearTimeout(c.timer);
    if (show) for (const n of c.held.values()) this.#show(n);
  }

  /** @param {{id?: string, tag?: string, cursor?: string}} r */
  #onRetract({ id, tag, cursor }) {
    this.#saveCursor(cursor);
    for (const [k, n] of this.#catchUp?.held ?? []) {
      if (n.id === id || (tag && n.tag === tag)) this.#catchUp?.held.delete(k);
    }
    for (const [key, p] of this.#popups) {
      if (key === id || (tag && p.tag === tag)) {
        p.close();
        this.#popups.delete(key);
      }
    }
    // The popup may belong to another tab or to the service worker.
    navigator.serviceWorker?.getRegistration().then((reg) => reg?.getNotifications()).then((list) => {
      for (const n of list ?? []) if ((tag && n.tag === tag) || (id && n.data?.id === id)) n.close();
    }).catch(() => {});
    removeToast(id, tag);
    this.#emit('retract', { id, tag });
    if (this.#unreadCount) this.#refreshUnread();
  }

  /**
   * A read or a dismissal, on any surface of the user: close what it
   * covers here, in other tabs and in the service worker.
   * @param {any} msg
   */
  #onRead({ state, ids, tag, up_to: upTo, cursor }) {
    this.#saveCursor(cursor);
    const covers = (id, t) => upTo != null || (ids ?? []).includes(id) || (tag != null && t === tag);
    for (const [k, n] of this.#catchUp?.held ?? []) if (covers(n.id, n.tag)) this.#catchUp?.held.delete(k);
    for (const [key, p] of this.#popups) {
      if (covers(key, p.tag)) {
        p.close();
        this.#popups.delete(key);
      }
    }
    navigator.serviceWorker?.getRegistration().then((reg) => reg?.getNotifications()).then((list) => {
      for (const n of list ?? []) if (covers(n.data?.id, n.tag)) n.close();
    }).catch(() => {});
    for (const id of ids ?? []) removeToast(id, undefined);
    if (tag != null) removeToast(undefined, tag);
    this.#emit('read', { state, ids, tag, upTo });
  }

  /** @param {any} msg */
  #onUnread({ total, tags, as_of: asOf, cursor }) {
    this.#saveCursor(cursor);
    // Counts arrive in history order, but a later one may describe an
    // earlier position: keep the newest position's.
    if (this.#unreadCount && asOf && cursorSeq(asOf) < cursorSeq(this.#unreadCount.asOf)) return;
    this.#setUnread(total ?? 0, tags ?? {}, asOf);
  }

  #setUnread(total, tags, asOf) {
    this.#unreadCount = { total, tags, asOf };
    navigator.setAppBadge?.(total).catch?.(() => {});
    this.#emit('unread', { total, tags });
  }

  /** The unread counts last received ({total, tags}), or undefined. */
  get unread() {
    return this.#unreadCount && { total: this.#unreadCount.total, tags: this.#unreadCount.tags };
  }

  /**
   * Mark notifications read everywhere: an array of ids, or {tag}, or
   * {upTo: cursor}. Resolves to the server's {changed, unread}.
   * @param {string[] | {tag?: string, upTo?: string}} sel
   */
  markRead(sel) { return this.#mark('/v1/read', sel); }

  /** Mark notifications seen (they stay unread). @param {string[] | {tag?: string, upTo?: string}} sel */
  markSeen(sel) { return this.#mark('/v1/seen', sel); }

  /** Dismiss notifications everywhere. @param {string[] | {tag?: string, upTo?: string}} sel */
  dismiss(sel) { return this.#mark('/v1/dismiss', sel); }

  async #mark(path, sel) {
    const body = Array.isArray(sel) ? { ids: sel } : sel?.tag != null ? { tag: sel.tag } : { up_to: sel?.upTo };
    const res = await this.#api('POST', path, body);
    if (res?.unread) this.#onUnread({ ...res.unread });
    return res;
  }

  /** @param {HeraldNotification} n */
  #isOwn(n) {
    const sender = n.data?.senderId;
    return sender != null && this.#user != null && String(sender) === this.#user;
  }

  /** @param {string | undefined} c @param {boolean} [force] */
  #saveCursor(c, force = false) {
    if (c == null || (!force && c === '')) return;
    if (!force && this.#cursor && !cursorAfter(c, this.#cursor)) return;
    this.#cursor = c || null;
    try {
      const key = this.#cursorKey();
      const stored = localStorage.getItem(key);
      // Tabs share the stored cursor; it only moves forward (or to a new history).
      if (force || !stored || cursorAfter(c, stored)) {
        if (c) localStorage.setItem(key, c);
        else localStorage.removeItem(key);
      }
    } catch { /* storage unavailable: resume within this page only */ }
  }

  #cursorKey() { return `herald:cursor:${this.#base.origin}:${this.#user ?? ''}`; }

  // --- acks ---------------------------------------------------------------

  /** @param {string} id */
  #ack(id) {
    const c = this.#conn;
    if (c instanceof WebSocket && c.readyState === WebSocket.OPEN) {
      c.send(JSON.stringify({ type: 'ack', id }));
      return;
    }
    this.#pendingAcks.add(id);
    this.#ackTimer ??= setTimeout(() => this.#flushAcks(), ACK_DELAY);
  }

  #flushAcks() {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (!this.#pendingAcks.size || !this.#token) return;
    const ids = [...this.#pendingAcks];
    this.#pendingAcks.clear();
    for (let i = 0; i < ids.length; i += 1000) {
      fetch(new URL('/v1/ack', this.#base), {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + this.#token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ ids: ids.slice(i, i + 1000) }),
        keepalive: true,
      }).catch(() => { /* best effort: without an ack the server pushes instead */ });
    }
  }

  // --- popups and toasts --------------------------------------------------

  /** @param {HeraldNotification} n */
  async #popup(n) {
    if (!(await claimPopup(n.id))) return; // another tab or the service worker showed it
    const opts = { body: n.body ?? '', icon: n.icon || undefined, tag: n.tag || undefined, data: { id: n.id, url: n.url ?? '' } };
    try {
      const p = new Notification(n.title ?? '', opts);
      p.onclick = (e) => {
        e.preventDefault();
        p.close();
        this.#clicked(n.url, n);
      };
      p.onclose = () => { if (this.#popups.get(n.id) === p) this.#popups.delete(n.id); };
      this.#popups.set(n.id, p);
    } catch {
      // Some browsers (Chrome on Android) only show popups through a service worker.
      const reg = await navigator.serviceWorker?.getRegistration().catch(() => undefined);
      if (reg) await reg.showNotification(n.title ?? '', opts).catch(() => this.#toast(n));
      else this.#toast(n);
    }
  }

  /** @param {HeraldNotification} n */
  #toast(n) {
    if (!this.#emit('toast', n, true) || this.#opts.toast === false) return;
    if (typeof this.#opts.toast === 'function') return this.#opts.toast(n);
    if (globalThis.document) showToast(n, () => this.#clicked(n.url, n));
  }

  /**
   * A popup, toast or push notification was clicked: emit a cancelable
   * click event; by default focus the window and open the URL.
   * @param {string | undefined} url @param {Partial<HeraldNotification>} n
   */
  #clicked(url, n) {
    const target = openableURL(url, location.href);
    if (!this.#emit('click', { notification: n, url: target ? url : undefined }, true)) return;
    globalThis.focus?.();
    if (target && target.href !== location.href) location.assign(target.href);
  }

  /** @param {string} type @param {any} detail @param {boolean} [cancelable] */
  #emit(type, detail, cancelable = false) {
    return this.dispatchEvent(new CustomEvent(type, { detail, cancelable }));
  }

  // --- push subscription upkeep -------------------------------------------

  /** Register a subscription the service worker renewed while no token was at hand. */
  async #syncPush() {
    const cfg = await idb.get('config', 'push');
    if (!cfg?.pending) return;
    const { id } = await this.#api('POST', '/v1/devices', { platform: 'webpush', subscription: cfg.pending, scope: cfg.scope });
    if (cfg.deviceId && cfg.deviceId !== id) this.#api('DELETE', '/v1/devices/' + encodeURIComponent(cfg.deviceId)).catch(() => {});
    await idb.update('config', 'push', (c) => c && { ...c, pending: undefined, deviceId: id });
  }
}

// --- helpers --------------------------------------------------------------

export default Herald;
