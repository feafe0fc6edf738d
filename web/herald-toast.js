// Herald browser client: the default in-page toast, shown when popups are
// not permitted.

const TOAST_MS = 8000;

function toastBox() {
  let box = document.getElementById('herald-toasts');
  if (box) return box;
  box = document.createElement('div');
  box.id = 'herald-toasts';
  box.setAttribute('role', 'region');
  box.setAttribute('aria-label', 'Notifications');
  Object.assign(box.style, {
    position: 'fixed', right: '1rem', bottom: '1rem', zIndex: '2147483647',
    display: 'flex', flexDirection: 'column', gap: '.5rem', maxWidth: '22rem',
  });
  document.body.append(box);
  return box;
}

/** @param {HeraldNotification} n @param {() => void} onOpen */
export function showToast(n, onOpen) {
  removeToast(undefined, n.tag); // a newer one replaces its tag
  const el = document.createElement('div');
  el.className = 'herald-toast';
  el.setAttribute('role', 'status'); // announced politely, as docs/browser.md says
  el.dataset.id = n.id;
  if (n.tag) el.dataset.tag = n.tag;
  Object.assign(el.style, {
    background: '#1f2937', color: '#fff', padding: '.75rem 2.25rem .75rem 1rem', borderRadius: '.5rem',
    boxShadow: '0 4px 12px rgba(0,0,0,.25)', font: '14px/1.4 system-ui, sans-serif', position: 'relative',
    cursor: n.url ? 'pointer' : 'default',
  });
  const title = document.createElement('strong');
  title.textContent = n.title ?? '';
  const body = document.createElement('div');
  body.textContent = n.body ?? '';
  const close = document.createElement('button');
  close.type = 'button';
  close.textContent = '×';
  close.setAttribute('aria-label', 'Dismiss');
  Object.assign(close.style, {
    position: 'absolute', top: '.25rem', right: '.25rem', background: 'none', border: '0',
    color: 'inherit', font: '18px/1 system-ui, sans-serif', cursor: 'pointer', padding: '.25rem .5rem',
  });
  close.onclick = (e) => { e.stopPropagation(); el.remove(); };
  el.append(title, body, close);
  el.onclick = () => { el.remove(); onOpen(); };
  toastBox().append(el);
  setTimeout(() => el.remove(), TOAST_MS);
}

/** @param {string | undefined} id @param {string | undefined} tag */
export function removeToast(id, tag) {
  for (const el of globalThis.document?.querySelectorAll('#herald-toasts .herald-toast') ?? []) {
    const d = /** @type {HTMLElement} */ (el).dataset;
    if ((id && d.id === id) || (tag && d.tag === tag)) el.remove();
  }
}
