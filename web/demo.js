// The demo page: sign in as any user (development-only token helper),
// watch the connection, the inbox and the popups, and send test traffic.
import { Herald } from '/herald.js';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
/** @type {Herald | null} */
let herald = null;

/** @param {string} path @param {any} body */
async function post(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  return { status: res.status, data };
}

/** @param {string} user */
async function demoToken(user) {
  const { status, data } = await post('/demo/token', { user });
  if (status !== 200) throw new Error(data?.error?.message ?? `token: HTTP ${status}`);
  return data.token;
}

/** @param {import('./herald.js').HeraldNotification} n @param {boolean} [top] */
function addToInbox(n, top = true) {
  if (document.querySelector(`#inbox li[data-id="${CSS.escape(n.id)}"]`)) return;
  const li = document.createElement('li');
  li.dataset.id = n.id;
  if (n.tag) li.dataset.tag = n.tag;
  const title = document.createElement('strong');
  title.textContent = n.title || '(no title)';
  const body = document.createElement('div');
  body.textContent = n.body ?? '';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const from = n.data?.senderId ? `from ${n.data.senderId} · ` : '';
  meta.textContent = `${from}${n.type ?? ''} · ${new Date(n.created_at ?? Date.now()).toLocaleTimeString()}`;
  li.append(title, body, meta);
  $('inbox')[top ? 'prepend' : 'append'](li);
}

async function loadInbox() {
  if (!herald) return;
  const { notifications } = await herald.fetchInbox({ limit: 50 });
  $('inbox').replaceChildren();
  for (const n of notifications.reverse()) addToInbox(n, false);
}

function showPermission() {
  const p = herald?.permission;
  $('perm').textContent = p === 'granted' ? 'Popups are on.'
    : p === 'denied' ? 'Popups are blocked; notifications appear as in-page toasts.'
      : p === 'unsupported' ? 'This browser has no Notification API; notifications appear as in-page toasts.'
        : 'Popups are off until you enable them; meanwhile notifications appear as in-page toasts.';
}

/** @param {string} user */
async function signIn(user) {
  herald?.close();
  herald = new Herald({ getToken: () => demoToken(user), user });
  $('me').textContent = user;
  /** @type {HTMLInputElement} */ ($('send-form').querySelector('[name=to]')).value = user;
  $('login').hidden = true;
  $('app').hidden = false;
  herald.on('state', ({ state, transport }) => {
    $('state').dataset.state = state;
    $('state').textContent = state === 'closed' ? 'closed' : `${state} (${transport === 'ws' ? 'WebSocket' : 'SSE'})`;
  });
  herald.on('notification', (n) => addToInbox(n));
  herald.on('retract', ({ id, tag }) => {
    for (const li of document.querySelectorAll('#inbox li')) {
      const d = /** @type {HTMLElement} */ (li).dataset;
      if (d.id === id || (tag && d.tag === tag)) li.classList.add('retracted');
    }
  });
  herald.on('reset', () => loadInbox());
  herald.on('click', ({ url, notification }, e) => {
    // This server has no app pages (/chat/… of the samples): stay here,
    // say what an app would open, and show the inbox.
    if (url && new URL(url, location.href).origin === location.origin) {
      e.preventDefault();
      $('result').textContent = `Clicked “${notification.title ?? ''}”: your app would open ${url}`;
      $('inbox').scrollIntoView();
    }
  });
  sessionStorage.setItem('herald-demo-user', user);
  showPermission();
  herald.connect();
  await loadInbox().catch((err) => { $('result').textContent = 'Inbox: ' + err.message; });
  document.body.dataset.ready = 'true';
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const user = String(new FormData(/** @type {HTMLFormElement} */ (e.target)).get('user')).trim();
  if (user) signIn(user);
});

$('enable').addEventListener('click', async () => {
  await herald?.enableNotifications();
  showPermission();
});

$('push').addEventListener('click', async () => {
  try {
    const { id } = await /** @type {Herald} */ (herald).subscribePush({ serviceWorker: '/herald-sw.js' });
    $('result').textContent = `Web Push on: device ${id}.`;
  } catch (err) {
    $('result').textContent = 'Web Push: ' + /** @type {Error} */ (err).message;
  }
  showPermission();
});

$('logout').addEventListener('click', async () => {
  await herald?.logout();
  herald = null;
  sessionStorage.removeItem('herald-demo-user');
  $('inbox').replaceChildren();
  $('app').hidden = true;
  $('login').hidden = false;
});

$('send-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(/** @type {HTMLFormElement} */ (e.target));
  const get = (/** @type {string} */ k) => String(f.get(k) ?? '').trim();
  const to = get('to').split(',').map((s) => s.trim()).filter(Boolean);
  const { status, data } = await post('/demo/send', { to, from: get('from'), title: get('title'), body: get('body'), tag: get('tag'), url: get('url') });
  $('result').textContent = status === 202 ? `Sent to ${to.join(', ')}.` : `Send failed: ${data?.error?.message ?? status}`;
});

for (const btn of document.querySelectorAll('[data-webhook]')) {
  btn.addEventListener('click', async () => {
    const provider = /** @type {HTMLElement} */ (btn).dataset.webhook;
    const { status, data } = await post(`/demo/webhook/${provider}`, { to: herald?.user });
    const answer = typeof data?.response === 'object' ? JSON.stringify(data.response) : data?.response ?? data?.error?.message ?? '';
    $('result').textContent = `POST /webhooks/${provider} → ${status} ${answer}`;
  });
}

const saved = sessionStorage.getItem('herald-demo-user');
if (saved) signIn(saved);
