// Type declarations for herald.js, the Herald browser client.

/** A notification as Herald delivers it. */
export interface HeraldNotification {
  id: string;
  cursor?: string;
  user?: string;
  type?: string;
  title?: string;
  body?: string;
  icon?: string;
  url?: string;
  tag?: string;
  urgency?: 'high' | 'normal' | 'low';
  /** Provider details; data.senderId names the sender of a chat message. */
  data?: Record<string, unknown>;
  created_at?: string;
}

export type HeraldState = 'connecting' | 'open' | 'reconnecting' | 'closed';
export type HeraldTransport = 'ws' | 'sse';

export interface HeraldOptions {
  /** Base URL of the Herald server; default: this page's origin. */
  url?: string;
  /** A user token (JWT). Give this or getToken. */
  token?: string;
  /** Returns a user token; called at the first connect and whenever the server refuses the current token. */
  getToken?: () => string | Promise<string>;
  /** 'auto' (default): WebSocket, falling back to SSE for the session when WebSocket cannot connect. */
  transport?: 'auto' | 'ws' | 'sse';
  /** The current user; default: the token's sub claim. Messages whose data.senderId is this user raise no popup. */
  user?: string;
  /** Raise Notification API popups when permitted (default true). */
  popups?: boolean;
  /** In-page fallback when popups are not permitted: true (default) for the built-in toast, false for none, or a renderer. */
  toast?: boolean | ((n: HeraldNotification) => void);
  /** Cap of the first reconnect delay, ms (default 500); it doubles per failed attempt. */
  minDelay?: number;
  /** Largest reconnect delay, ms (default 30000). */
  maxDelay?: number;
  /** WebSocket attempts failing before open while HTTP works, before the SSE fallback (default 2). */
  wsFailures?: number;
  /**
   * Popups (or toasts) for the notifications a resumed connection replays, missed while away:
   * 'latest-per-tag' (default) the most recent of each tag, untagged ones counting as one tag;
   * 'all' one for each; 'none' none. The notification events and the inbox get all of them.
   */
  catchUp?: 'all' | 'latest-per-tag' | 'none';
}

export interface HeraldEventMap {
  /** Every new notification, once per tab. */
  notification: HeraldNotification;
  /** A notification was withdrawn; its popup and toast are closed. */
  retract: { id?: string; tag?: string };
  /** Notifications were read or dismissed on some surface of the user; their popups are closed. */
  read: { state: 'read' | 'dismissed'; ids?: string[]; tag?: string; upTo?: string };
  /** Notifications were seen on some surface of the user. */
  seen: { ids?: string[]; tag?: string; upTo?: string };
  /** The user's unread counts changed; the app badge follows where the browser has one. */
  unread: { total: number; tags: Record<string, number> };
  /** The stored cursor could not be resumed from: reload the inbox. */
  reset: { cursor: string };
  state: { state: HeraldState; transport: HeraldTransport; delay?: number };
  /** Cancelable: call event.preventDefault() to render your own toast. */
  toast: HeraldNotification;
  /** Cancelable: call event.preventDefault() to route the URL yourself. url is set only when it is http(s) or relative. */
  click: { notification: Partial<HeraldNotification>; url?: string };
  /**
   * Something failed. code 'origin_not_allowed' (status 403): the server refuses this page's
   * origin (HERALD_ALLOWED_ORIGINS); code 4008: the user has too many sessions
   * (HERALD_MAX_SESSIONS_PER_USER) and this one was closed. In both cases the client has
   * stopped and state is 'closed'.
   */
  error: { error: unknown; status?: number; code?: string | number };
}

export class Herald extends EventTarget {
  constructor(options: HeraldOptions);
  readonly state: HeraldState;
  readonly transport: HeraldTransport;
  readonly user: string | null;
  readonly cursor: string | null;
  readonly permission: NotificationPermission | 'unsupported';

  /** Adds a listener that receives the event's detail; returns a function that removes it. */
  on<K extends keyof HeraldEventMap>(type: K, fn: (detail: HeraldEventMap[K], event: CustomEvent<HeraldEventMap[K]>) => void): () => void;
  off<K extends keyof HeraldEventMap>(type: K, fn: (detail: HeraldEventMap[K], event: CustomEvent<HeraldEventMap[K]>) => void): void;

  /** The EventTarget way: the listener gets the CustomEvent, whose detail is the payload. */
  addEventListener<K extends keyof HeraldEventMap>(type: K, listener: (this: Herald, event: CustomEvent<HeraldEventMap[K]>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof HeraldEventMap>(type: K, listener: (this: Herald, event: CustomEvent<HeraldEventMap[K]>) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;

  connect(): void;
  close(): void;
  /** close(), unsubscribePush() and forget the stored cursor. */
  logout(): Promise<void>;
  /** Asks for popup permission; call from a user gesture. */
  enableNotifications(): Promise<NotificationPermission | 'unsupported'>;
  fetchInbox(query?: { since?: string; limit?: number }): Promise<{ notifications: HeraldNotification[]; cursor: string; reset?: boolean }>;
  /**
   * Registers the service worker, subscribes to Web Push and registers the device. Rejects
   * (error.code 'timeout') when the service worker or the browser's push service does not
   * answer within timeout ms (default 30000): headless browsers cannot subscribe.
   */
  subscribePush(options?: { serviceWorker?: string; scope?: string; timeout?: number }): Promise<{ id: string; subscription: PushSubscription }>;
  unsubscribePush(): Promise<void>;
  /** The unread counts last received, if any. */
  readonly unread: { total: number; tags: Record<string, number> } | undefined;
  /** Mark read everywhere: ids, a tag (conversation) or everything up to a cursor. */
  markRead(sel: string[] | { tag: string } | { upTo: string }): Promise<{ changed: number; unread: { total: number; tags: Record<string, number> } }>;
  markSeen(sel: string[] | { tag: string } | { upTo: string }): Promise<{ changed: number; unread: { total: number; tags: Record<string, number> } }>;
  dismiss(sel: string[] | { tag: string } | { upTo: string }): Promise<{ changed: number; unread: { total: number; tags: Record<string, number> } }>;
}

export default Herald;
