// Herald service worker: shows Web Push notifications (unless a tab of the
// app already showed the same one), closes retracted ones, brings the app
// forward on click, and keeps the push subscription registered.
//
// Register it through herald.subscribePush(); it is served from the
// server's root with Service-Worker-Allowed: /.
/* eslint-env serviceworker */

const SHOWN_MAX_AGE = 7 * 24 * 3600 * 1000;

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('activate', (event) => {
  event.waitUntil(Promise.all([self.clients.claim(), pruneShown().catch(() => {})]));
});

self.addEventListener('push', (event) => {
  // A browser that understood a declarative push message (see onPush)
  // shows its notification itself once this handler is done, and hands it
  // here as event.notification: showing one more would show it twice.
  if (event.notification) return;
  event.waitUntil(onPush(event.data));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(onNotificationClick(event.notification));
});

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(onSubscriptionChange(event.oldSubscription, event.newSubscription));
});

/**
 * Handles one push payload: a declarative push message
 * ({"web_push":8030,"notification":{"title","body","navigate","tag",
 * "data":{"id",…}},"mutable":true}, sent to subscriptions registered with
 * their scope), {"type":"notification","notification":{…}} or
 * {"type":"retract","id":"…","tag":"…"}.
 *
 * A retraction and a notification a tab already showed display nothing.
 * Chrome expects every push to show something; it tolerates a few that do
 * not, and the server only pushes when no tab acknowledged, so these stay
 * rare.
 * @param {PushMessageData | null} data
 */
async function onPush(data) {
  if (!data) return;
  let msg;
  try {
    msg = data.json();
  } catch {
    msg = { type: 'notification', notification: { title: data.text() } };
  }
  const badge = msg?.web_push === 8030 ? msg.notification?.app_badge : msg?.badge;
  if (typeof badge === 'number') await setBadge(badge);
  if (msg?.type === 'retract') return closeMatching(msg.id, msg.tag);
  if (msg?.type === 'read') return closeIDs(msg.ids, msg.tag);
  const n = msg?.web_push === 8030 ? fromDeclarative(msg.notification)
    : msg?.type === 'notification' ? msg.notification : msg;
  if (!n || (!n.title && !n.body)) return;
  if (n.id && !(await claim(n.id))) return;
  await self.registration.showNotification(n.title || 'New notification', {
    body: n.body || '',
    icon: n.icon || undefined,
    tag: n.tag || undefined,
    data: { id: n.id, url: n.url || '' },
  });
}

/**
 * The notification a declarative message describes, in the shape of a
 * live frame's: its data carries the id and the notification's own fields,
 * navigate the absolute click target.
 * @param {any} d
 */
function fromDeclarative(d) {
  if (!d) return undefined;
  return { ...(d.data ?? {}), title: d.title, body: d.body, icon: d.icon, tag: d.tag, url: d.navigate };
}

/** @param {string} [id] @param {string} [tag] */
async function closeMatching(id, tag) {
  const shown = await self.registration.getNotifications(tag ? { tag } : undefined);
  for (const n of shown) {
    if ((tag && n.tag === tag) || (id && n.data?.id === id)) n.close();
  }
}

/**
 * Closes the shown notifications with these ids (looked up among those of
 * tag when given). Only ids: a newer notification of the same conversation
 * shown since stays.
 * @param {string[]} [ids] @param {string} [tag]
 */
async function closeIDs(ids, tag) {
  if (!Array.isArray(ids) || ids.length === 0) return;
  const want = new Set(ids);
  for (const n of await self.registration.getNotifications(tag ? { tag } : undefined)) {
    if (want.has(n.data?.id)) n.close();
  }
}

/** Sets the app badge where the browser has one (0 clears it). @param {number} n */
async function setBadge(n) {
  const nav = /** @type {any} */ (self.navigator);
  try {
    await (n > 0 ? nav.setAppBadge?.(n) : nav.clearAppBadge?.());
  } catch {
    // no badging here, or not allowed
  }
}

/**
 * Focuses a tab of the app and tells it which URL to open (herald.js
 * emits "click" and navigates there by default), or opens a new window on
 * that URL when no tab is open.
 * @param {Notification} notification
 */
async function onNotificationClick(notification) {
  const { id, url } = notification.data ?? {};
  // Only http(s) URLs open (a javascript: URL would run in the app's
  // window); any other url is ignored and the click opens nothing.
  const target = openableURL(url || '/', self.registration.scope);
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const win = windows.find((c) => c.focused) ?? windows.find((c) => c.visibilityState === 'visible') ?? windows[0];
  if (!win) return target ? self.clients.openWindow(target) : undefined;
  win.postMessage({ type: 'herald:click', id, url: target, notification: { id, url: target, title: notification.title, body: notification.body, tag: notification.tag } });
  try {
    await win.focus();
  } catch {
    // focus() is allowed only while handling a real click.
  }
}

/**
 * The URL a click may open, resolved against base, or undefined unless
 * it is http(s).
 * @param {string} url @param {string} base
 */
function openableURL(url, base) {
  try {
    const u = new URL(url, base);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The push service replaced the subscription: subscribe again if needed and
 * register the new one as a device. Without a valid token at hand the new
 * subscription waits in IndexedDB for the next page that runs Herald.
 * @param {PushSubscription | null} oldSub @param {PushSubscription | null} newSub
 */
async function onSubscriptionChange(oldSub, newSub) {
  const cfg = await idbGet('config', 'push');
  if (!cfg) return;
  const sub = newSub ?? await self.registration.pushManager.subscribe(
    oldSub?.options ?? { userVisibleOnly: true, applicationServerKey: fromBase64url(cfg.publicKey) });
  const json = sub.toJSON();
  cfg.pending = { endpoint: json.endpoint, keys: { p256dh: json.keys?.p256dh, auth: json.keys?.auth } };
  await idbPut('config', 'push', cfg);
  if (cfg.token && !expired(cfg.token)) {
    try {
      const res = await fetch(new URL('/v1/devices', cfg.url), {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + cfg.token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ platform: 'webpush', subscription: cfg.pending, scope: self.registration.scope }),
      });
      if (res.ok) {
        const { id } = await res.json();
        if (cfg.deviceId && cfg.deviceId !== id) {
          // Awaited so that the event's waitUntil keeps the worker alive
          // until the old device is gone.
          await fetch(new URL('/v1/devices/' + encodeURIComponent(cfg.deviceId), cfg.url), {
            method: 'DELETE', headers: { Authorization: 'Bearer ' + cfg.token },
          }).catch(() => {});
        }
        delete cfg.pending;
        cfg.deviceId = id;
        await idbPut('config', 'push', cfg);
        return;
      }
    } catch {
      // offline: a tab registers it later
    }
  }
  for (const c of await self.clients.matchAll({ type: 'window' })) c.postMessage({ type: 'herald:resubscribe' });
}

/** @param {string} token */
function expired(token) {
  try {
    const { exp } = JSON.parse(new TextDecoder().decode(fromBase64url(token.split('.')[1])));
    return typeof exp === 'number' && exp * 1000 < Date.now() + 10_000;
  } catch {
    return true;
  }
}

/** @param {string} s */
function fromBase64url(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

// IndexedDB, with the schema herald.js uses: "shown" holds the ids of
// notifications already on screen (id → time), "config" the push setup.

let dbPromise;

function openDB() {
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open('herald', 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore('shown');
      req.result.createObjectStore('config');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => {
      dbPromise = undefined;
      reject(req.error);
    };
  });
  return dbPromise;
}

async function tx(store, mode, fn) {
  const t = (await openDB()).transaction(store, mode);
  return new Promise((resolve, reject) => {
    let result;
    fn(t.objectStore(store), (v) => { result = v; });
    t.oncomplete = () => resolve(result);
    t.onabort = () => reject(t.error);
  });
}

const idbGet = (store, key) => tx(store, 'readonly', (s, done) => {
  s.get(key).onsuccess = (e) => done(e.target.result);
});

const idbPut = (store, key, value) => tx(store, 'readwrite', (s) => { s.put(value, key); });

/** Records id as shown; false when a tab (or an earlier push) already did. */
async function claim(id) {
  try {
    return await tx('shown', 'readwrite', (s, done) => {
      done(false);
      const req = s.add(Date.now(), id);
      req.onsuccess = () => done(true);
      req.onerror = (e) => { // ConstraintError: already there
        e.preventDefault();
        e.stopPropagation();
      };
    });
  } catch {
    return true; // no IndexedDB: better twice than never
  }
}

function pruneShown() {
  const cutoff = Date.now() - SHOWN_MAX_AGE;
  return tx('shown', 'readwrite', (s) => {
    s.openCursor().onsuccess = (e) => {
      const cur = e.target.result;
      if (!cur) return;
      if (cur.value < cutoff) cur.delete();
      cur.continue();
    };
  });
}
