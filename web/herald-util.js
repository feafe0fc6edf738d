// Herald browser client: small helpers of herald.js (URLs, cursors,
// tokens, bytes, promises). No state.

/**
 * The URL a click may open: http(s) only, relative URLs resolved against
 * base. Anything else (javascript:, data:, …) opens nothing: a
 * notification's url comes from whoever sent it.
 * @param {string | undefined} url @param {string} base
 * @returns {URL | null}
 */
export function openableURL(url, base) {
  if (!url) return null;
  try {
    const u = new URL(url, base);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u : null;
  } catch {
    return null;
  }
}

/**
 * Whether cursor a comes after b. Cursors are "<epoch>-<seq>"; a different
 * epoch is a new history, which always wins.
 * @param {string} a @param {string} b
 */
export function cursorAfter(a, b) {
  const i = a.lastIndexOf('-'), j = b.lastIndexOf('-');
  if (a.slice(0, i) !== b.slice(0, j)) return true;
  return Number(a.slice(i + 1)) > Number(b.slice(j + 1));
}

/** @param {string} token */
function tokenClaims(token) {
  try {
    const part = token.split('.')[1];
    return JSON.parse(new TextDecoder().decode(fromBase64url(part)));
  } catch {
    return {};
  }
}

/** @param {string} token */
export function tokenSubject(token) {
  const sub = tokenClaims(token).sub;
  return sub == null ? null : String(sub);
}

/** @param {string} token @param {number} ms */
export function expiresWithin(token, ms) {
  const exp = tokenClaims(token).exp;
  return typeof exp === 'number' && exp * 1000 < Date.now() + ms;
}

/** @param {string} s */
export function fromBase64url(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** @param {ArrayBuffer | null} a @param {Uint8Array} b */
export function sameBytes(a, b) {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

/** The seq of a cursor "<epoch>-<seq>" (0 when there is none). @param {string} [c] */
export function cursorSeq(c) {
  const n = Number(String(c ?? '').split('-').pop());
  return Number.isFinite(n) ? n : 0;
}

/** @param {PushSubscription} sub */
export function subscriptionBody(sub) {
  const { endpoint, keys } = sub.toJSON();
  return { endpoint, keys: { p256dh: keys?.p256dh, auth: keys?.auth } };
}

/**
 * p, or a rejection with message (code 'timeout') after ms.
 * @template T @param {Promise<T>} p @param {number} ms @param {string} message
 * @returns {Promise<T>}
 */
export function withTimeout(p, ms, message) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(message), { code: 'timeout' })), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([p, expired])).finally(() => clearTimeout(timer));
}

/** @param {ServiceWorkerRegistration} reg */
export function activated(reg) {
  if (reg.active) return Promise.resolve(reg);
  const w = /** @type {ServiceWorker} */ (reg.installing ?? reg.waiting);
  return new Promise((resolve, reject) => {
    w.addEventListener('statechange', () => {
      if (w.state === 'activated') resolve(reg);
      if (w.state === 'redundant') reject(new Error('Herald: service worker failed to install'));
    });
  });
}
