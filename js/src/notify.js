// When a job the page shows ends while the page is hidden (docs/jobs-view.md): a
// browser notification, once the user allowed it from a widget, and the count
// of jobs that ended unseen in the tab title until the page is visible again.
//
// One notifier per page, on `globalThis` (anywidget imports the ESM once per
// widget model): every widget reports the snapshots it shows, so a job shown
// by a progress widget and a jobs view row ends once, not twice.

import { isTerminal } from "./states.js";
import { countsText } from "./format.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */

/** Where the page's notifier lives on `globalThis`. */
export const NOTIFIER_KEY = "__batchWidgetNotifier";
/** The `localStorage` key of the user's choice, made from a widget ("on" or absent). */
export const OPT_IN_KEY = "batch_widget.notifications";

/**
 * The browser's `Notification` constructor, as far as it is used here.
 * @typedef {{
 *   new (title: string, options?: NotificationOptions): Notification,
 *   permission: NotificationPermission,
 *   requestPermission: () => Promise<NotificationPermission>,
 * }} NotificationApi
 */

/**
 * What the notifier uses from the page; injectable for tests.
 * @typedef {object} NotifierEnv
 * @property {Document} document
 * @property {NotificationApi | undefined} Notification
 * @property {Pick<Storage, "getItem" | "setItem" | "removeItem"> | null} storage
 * @property {(() => void) | undefined} focus brings the page to the front (a click on a notification)
 */

/** "(2 ended) " ahead of the page's own title. */
const TITLE_PREFIX = /^\(\d+ ended\) /;

/** @returns {NotifierEnv} */
function browserEnv() {
  const g = /** @type {any} */ (globalThis);
  let storage = null;
  try {
    storage = g.localStorage || null;
  } catch {
    storage = null; // storage denied (a sandboxed frame): the choice lasts for the page
  }
  return {
    document: g.document,
    Notification: typeof g.Notification === "function" ? g.Notification : undefined,
    storage,
    focus: typeof g.focus === "function" ? () => g.focus() : undefined,
  };
}

export class Notifier {
  /** @param {NotifierEnv} env */
  constructor(env) {
    this.env = env;
    /** @type {Map<string, string>} the last status each job was shown in */
    this.statuses = new Map();
    /** Jobs that ended while the page was hidden, since it was last visible. */
    this.unseen = 0;
    /** Notifications raised (diagnostics and tests). */
    this.raised = 0;
    /** The user's choice when storage is not available. */
    this.wantedHere = false;
    /** @type {Set<() => void>} controls to re-render when the state changes */
    this.listeners = new Set();
    const doc = env.document;
    if (doc && typeof doc.addEventListener === "function") {
      doc.addEventListener("visibilitychange", () => {
        if (!this.hidden) this.seen();
      });
    }
    /** @type {MutationObserver | null} keeps the count when the app rewrites the title */
    this.titleWatch = null;
  }

  get hidden() {
    return Boolean(this.env.document && this.env.document.visibilityState === "hidden");
  }

  /** "unsupported", or the browser's permission: "default", "granted", "denied". */
  get permission() {
    return this.env.Notification ? this.env.Notification.permission : "unsupported";
  }

  /** The user asked for notifications from a widget. */
  get wanted() {
    const { storage } = this.env;
    if (!storage) return this.wantedHere;
    try {
      return storage.getItem(OPT_IN_KEY) === "on";
    } catch {
      return this.wantedHere;
    }
  }

  /** Notifications will be raised. */
  get enabled() {
    return this.wanted && this.permission === "granted";
  }

  /**
   * Ask the browser's permission (call it from a click) and remember the choice.
   * @returns {Promise<string>} the permission
   */
  async enable() {
    const api = this.env.Notification;
    if (!api) return "unsupported";
    const permission = api.permission === "granted" ? "granted" : await api.requestPermission();
    if (permission === "granted") this.remember(true);
    this.changed();
    return permission;
  }

  disable() {
    this.remember(false);
    this.changed();
  }

  /** @param {boolean} on */
  remember(on) {
    this.wantedHere = on;
    const { storage } = this.env;
    if (!storage) return;
    try {
      if (on) storage.setItem(OPT_IN_KEY, "on");
      else storage.removeItem(OPT_IN_KEY);
    } catch {
      // storage full or denied: the choice lasts for the page (wantedHere)
    }
  }

  /**
   * A widget shows `snapshot`: a job seen moving that is now finished has ended.
   * @param {Snapshot | null | undefined} snapshot
   */
  observe(snapshot) {
    if (!snapshot || typeof snapshot.id !== "string") return;
    const before = this.statuses.get(snapshot.id);
    this.statuses.set(snapshot.id, snapshot.status);
    if (before !== undefined && !isTerminal(before) && isTerminal(snapshot.status)) {
      this.ended(snapshot);
    }
  }

  /** @param {Snapshot} snapshot */
  ended(snapshot) {
    if (!this.hidden) return; // the user is looking at the page
    this.unseen += 1;
    this.showCount();
    if (this.enabled) this.raise(snapshot);
    this.changed();
  }

  /** @param {Snapshot} snapshot */
  raise(snapshot) {
    const api = this.env.Notification;
    if (!api) return;
    try {
      const note = new api(`${snapshot.name}: ${snapshot.status}`, {
        body: countsText(snapshot),
        tag: `batch_widget-${snapshot.id}`,
      });
      this.raised += 1;
      note.onclick = () => {
        if (this.env.focus) this.env.focus();
        note.close();
      };
    } catch (error) {
      // Chrome on Android allows notifications only from a service worker.
      console.debug("batch_widget: could not raise a notification", error);
    }
  }

  /** The page is visible again: every ended job has been seen. */
  seen() {
    if (this.unseen === 0) return;
    this.unseen = 0;
    const doc = this.env.document;
    if (doc) doc.title = doc.title.replace(TITLE_PREFIX, "");
    if (this.titleWatch) this.titleWatch.disconnect();
    this.titleWatch = null;
    this.changed();
  }

  showCount() {
    const doc = this.env.document;
    if (!doc) return;
    const own = doc.title.replace(TITLE_PREFIX, "");
    doc.title = `(${this.unseen} ended) ${own}`;
    const Observer = /** @type {any} */ (globalThis).MutationObserver;
    const title = typeof doc.querySelector === "function" ? doc.querySelector("title") : null;
    if (!this.titleWatch && Observer && title) {
      // JupyterLab sets the title when its active document changes: keep the count.
      this.titleWatch = /** @type {MutationObserver} */ (new Observer(() => {
        if (this.unseen > 0 && !TITLE_PREFIX.test(doc.title)) {
          doc.title = `(${this.unseen} ended) ${doc.title}`;
        }
      }));
      this.titleWatch.observe(title, { childList: true, characterData: true, subtree: true });
    }
  }

  /**
   * @param {() => void} listener called when the permission, the choice or the count changes
   * @returns {() => void} removes it
   */
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (error) {
        console.error("batch_widget notification control failed", error);
      }
    }
  }
}

/**
 * The page's notifier (made on first use).
 * @param {Record<string, unknown>} [registry] where it is kept (globalThis)
 * @param {NotifierEnv} [env]
 * @returns {Notifier}
 */
export function pageNotifier(registry = /** @type {Record<string, unknown>} */ (globalThis), env) {
  // Not `instanceof`: anywidget imports this module once per widget model, so
  // each model has its own Notifier class, and the page must keep one notifier.
  const existing = /** @type {{observe?: unknown} | undefined} */ (registry[NOTIFIER_KEY]);
  if (!existing || typeof existing.observe !== "function") {
    registry[NOTIFIER_KEY] = new Notifier(env || browserEnv());
  }
  return /** @type {Notifier} */ (registry[NOTIFIER_KEY]);
}

/**
 * The widget's control: a button that asks for notifications, or turns them off.
 * @param {Document} doc
 * @param {Notifier} notifier
 * @param {AbortSignal} signal removes it from the notifier's listeners
 * @returns {HTMLButtonElement}
 */
export function notifyControl(doc, notifier, signal) {
  const button = doc.createElement("button");
  button.setAttribute("type", "button");
  button.className = "bw-notify";
  const render = () => {
    const permission = notifier.permission;
    button.hidden = permission === "unsupported";
    button.disabled = permission === "denied";
    button.setAttribute("data-notify", permission === "denied" ? "blocked" : notifier.enabled ? "on" : "off");
    button.textContent =
      permission === "denied" ? "Notifications blocked" : notifier.enabled ? "Notifying" : "Notify me";
    button.setAttribute(
      "title",
      permission === "denied"
        ? "This browser blocks notifications from this page: allow them in the site settings"
        : notifier.enabled
          ? "A notification comes when a job shown on this page ends while you are elsewhere. Click to stop them."
          : "Get a browser notification when a job shown on this page ends while you are elsewhere",
    );
  };
  button.addEventListener(
    "click",
    () => {
      if (notifier.enabled) notifier.disable();
      else notifier.enable().catch((error) => console.debug("batch_widget: no permission", error));
    },
    { signal },
  );
  const off = notifier.onChange(render);
  signal.addEventListener("abort", off, { once: true });
  render();
  return button;
}
