// URLs and HTTP calls of docs/http-api.md, shared by the connection layer and the widget.
// Knows nothing of the DOM: the page's baseUrl, token and XSRF cookie come in
// as plain options, so tests need no document. The token never goes into a URL
// (proxies log URLs): fetches carry it in `Authorization`, the EventSource has
// the login cookie.

/** @typedef {import("./types.js").Api} Api */
/** @typedef {{baseUrl?: string, token?: string}} Auth */

/**
 * Ensure a base URL ends with exactly one slash ("" and undefined mean "/").
 * @param {string | undefined} baseUrl
 */
export function normalizeBaseUrl(baseUrl) {
  const base = baseUrl || "/";
  return base.endsWith("/") ? base : `${base}/`;
}

/**
 * The unfiltered SSE stream: one per page, widgets filter by job id client side.
 * No token in it, ever: an EventSource cannot send a header, and a URL is kept
 * in proxies' access logs. The login cookie authenticates it (jupyter_server sets
 * it on the page's `?token=` login, and again on any request the header
 * authenticates); without one it is refused and the widget polls (hub.js).
 * @param {Auth} [auth]
 */
export function streamUrl({ baseUrl } = {}) {
  return `${normalizeBaseUrl(baseUrl)}api/batch/events`;
}

/**
 * `api/batch/jobs/{id}` plus an optional sub-path and query string (never a token).
 * @param {Auth} auth
 * @param {string} jobId
 */
export function jobUrl({ baseUrl }, jobId, suffix = "", query = "") {
  const path = `${normalizeBaseUrl(baseUrl)}api/batch/jobs/${encodeURIComponent(jobId)}${suffix}`;
  return query ? `${path}?${query}` : path;
}

/**
 * `api/batch/jobs` with the list's query (docs/http-api.md: `status`, `limit`, `offset`).
 * @param {Auth} auth
 * @param {import("./types.js").ListQuery} query
 */
export function listUrl({ baseUrl }, { status, limit, offset }) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (status) params.set("status", status);
  return `${normalizeBaseUrl(baseUrl)}api/batch/jobs?${params}`;
}

/**
 * The headers of a call: JSON, and the page's token in `Authorization` when it
 * has one (a header stays out of URLs, history and access logs).
 * @param {string} token
 * @returns {Record<string, string>}
 */
export function authHeaders(token) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `token ${token}`;
  return headers;
}

/**
 * A link that opens a server-relative file in JupyterLab (each segment escaped).
 * @param {string | undefined} baseUrl
 * @param {string} path
 */
export function fileHref(baseUrl, path) {
  return `${normalizeBaseUrl(baseUrl)}lab/tree/${encodePath(path)}`;
}

/**
 * The URL that downloads an output file (Jupyter's `files/` handler): for
 * binary outputs such as `.gz`, which JupyterLab cannot show in a tab.
 * @param {string | undefined} baseUrl
 * @param {string} path
 */
export function downloadHref(baseUrl, path) {
  return `${normalizeBaseUrl(baseUrl)}files/${encodePath(path)}`;
}

/** @param {string} path */
function encodePath(path) {
  return String(path).split("/").map(encodeURIComponent).join("/");
}

/** An HTTP error that carries the server's `{"message": ...}` and the status. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {boolean} [json] the answer was JSON (batch_widget's own), not a page of HTML
   */
  constructor(status, message, json = false) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.json = json;
  }
}

/**
 * True when a failed call says the job is not on the server (any more): a 404.
 * @param {unknown} error
 */
export function isNotFound(error) {
  return Boolean(error && /** @type {{status?: number}} */ (error).status === 404);
}

/**
 * The JSON body of a successful answer; an ApiError with the server's message otherwise.
 * @param {Response} response
 * @returns {Promise<any>} the parsed body (its shape is the route's, docs/http-api.md)
 */
async function readJson(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = (body && body.message) || response.statusText || `HTTP ${response.status}`;
    throw new ApiError(response.status, message, body !== null);
  }
  return body;
}

/**
 * Build the small REST client the widget needs.
 *
 * @param {object} [options]
 * @param {string} [options.baseUrl] the page's base URL
 * @param {string} [options.token] the page config token, if any (never a widget trait)
 * @param {() => string} [options.getXsrf] reads the `_xsrf` cookie for writes
 * @param {typeof fetch} [options.fetch]
 * @returns {Api}
 */
export function createApi({ baseUrl = "/", token = "", getXsrf = () => "", fetch: fetchFn } = {}) {
  /** @type {typeof fetch} */
  const doFetch = fetchFn || ((input, init) => globalThis.fetch(input, init));
  const auth = { baseUrl };
  /**
   * @param {string} url
   * @param {AbortSignal} [signal]
   */
  const get = (url, signal) =>
    doFetch(url, { credentials: "same-origin", headers: authHeaders(token), signal })
      .then(readJson);
  /**
   * @param {string} url
   * @param {AbortSignal} [signal]
   */
  const post = (url, signal) => {
    const headers = authHeaders(token);
    headers["Content-Type"] = "application/json";
    const xsrf = getXsrf();
    if (xsrf) headers["X-XSRFToken"] = xsrf;
    return doFetch(url, { method: "POST", credentials: "same-origin", headers, body: "{}", signal })
      .then(readJson);
  };
  return {
    baseUrl: normalizeBaseUrl(baseUrl),
    getJob: (jobId, signal) => get(jobUrl(auth, jobId), signal),
    listJobs: (query, signal) => get(listUrl(auth, query), signal),
    getFailedItems: (jobId, limit = 20, signal) =>
      get(jobUrl(auth, jobId, "/items", `status=failed&limit=${limit}`), signal),
    getOutputs: (jobId, limit = 20, signal) =>
      get(jobUrl(auth, jobId, "/outputs", `limit=${limit}`), signal),
    // The header carries the token; XSRF guards the cookie path of writes.
    cancel: (jobId, signal) => post(jobUrl(auth, jobId, "/cancel"), signal),
    retry: (jobId, signal) => post(jobUrl(auth, jobId, "/retry"), signal),
    fileHref: (path) => fileHref(baseUrl, path),
    downloadHref: (path) => downloadHref(baseUrl, path),
  };
}
