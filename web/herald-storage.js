// Herald browser client: the IndexedDB store herald.js shares with
// herald-sw.js ("shown": ids of notifications on screen, "config": the
// push setup), and the claim that lets exactly one tab raise a popup.

const SHOWN_MAX_AGE = 7 * 24 * 3600 * 1000; // how long popup claims are kept

/**
 * Claim the popup of notification id for this tab: true for exactly one
 * tab (or the service worker) however many race. The Web Lock keeps tabs
 * that get the notification at the same moment from all reaching the store;
 * the IndexedDB insert is the record that decides, shared with the service
 * worker and kept across reloads.
 * @param {string} id
 */
export async function claimPopup(id) {
  const claim = async () => {
    try {
      return await idb.add('shown', id, Date.now());
    } catch {
      return claimInStorage(id); // no IndexedDB (private mode in some browsers)
    }
  };
  if (!navigator.locks) return claim();
  return navigator.locks.request('herald-popup-' + id, { ifAvailable: true }, (lock) => (lock ? claim() : false));
}

/** @param {string} id */
function claimInStorage(id) {
  try {
    const key = 'herald:shown:' + id;
    if (localStorage.getItem(key)) return false;
    localStorage.setItem(key, String(Date.now()));
  } catch { /* no storage at all: show it */ }
  return true;
}

/** A small IndexedDB wrapper; the schema is shared with herald-sw.js. */
export const idb = (() => {
  /** @type {Promise<IDBDatabase> | undefined} */
  let db;
  const open = () => db ??= new Promise((resolve, reject) => {
    const req = indexedDB.open('herald', 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore('shown');
      req.result.createObjectStore('config');
    };
    req.onsuccess = () => {
      resolve(req.result);
      prune(req.result);
    };
    req.onerror = () => { db = undefined; reject(req.error); };
  });
  /** @param {IDBDatabase} d */
  const prune = (d) => {
    const cutoff = Date.now() - SHOWN_MAX_AGE;
    const tx = d.transaction('shown', 'readwrite');
    tx.objectStore('shown').openCursor().onsuccess = (e) => {
      const cur = /** @type {IDBRequest<IDBCursorWithValue | null>} */ (e.target).result;
      if (!cur) return;
      if (cur.value < cutoff) cur.delete();
      cur.continue();
    };
  };
  /**
   * @template T
   * @param {string} store @param {IDBTransactionMode} mode
   * @param {(s: IDBObjectStore, done: (v: T) => void) => void} fn
   * @returns {Promise<T>}
   */
  const run = async (store, mode, fn) => {
    const tx = (await open()).transaction(store, mode);
    return new Promise((resolve, reject) => {
      /** @type {any} */ let result;
      fn(tx.objectStore(store), (v) => { result = v; });
      tx.oncomplete = () => resolve(result);
      tx.onabort = () => reject(tx.error);
    });
  };
  return {
    /** @param {string} store @param {string} key */
    get: (store, key) => run(store, 'readonly', (s, done) => { s.get(key).onsuccess = (e) => done(/** @type {IDBRequest} */ (e.target).result); }),
    /** @param {string} store @param {string} key @param {any} value */
    put: (store, key, value) => run(store, 'readwrite', (s) => { s.put(value, key); }),
    /** @param {string} store @param {string} key */
    del: (store, key) => run(store, 'readwrite', (s) => { s.delete(key); }),
    /** Insert only if absent; resolves whether it was inserted. @param {string} store @param {string} key @param {any} value */
    add: (store, key, value) => run(store, 'readwrite', (s, done) => {
      done(false);
      const req = s.add(value, key);
      req.onsuccess = () => done(true);
      req.onerror = (e) => { // ConstraintError: already there; keep the transaction
        e.preventDefault();
        e.stopPropagation();
      };
    }),
    /** @param {string} store @param {string} key @param {(v: any) => any} fn */
    update: (store, key, fn) => run(store, 'readwrite', (s) => {
      s.get(key).onsuccess = (e) => {
        const next = fn(/** @type {IDBRequest} */ (e.target).result);
        if (next) s.put(next, key);
      };
    }),
  };
})();
