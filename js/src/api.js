// URLs and HTTP calls of SPEC §3, shared by the connection layer and the widget.
// Knows nothing of the DOM: the page's baseUrl, token and XSRF cookie come in
// as plain options, so tests need no document.

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
 * Add `?token=` (or `&token=`) when the page has a token; else the cookie authenticates.
 * @param {string} url
 * @param {string | undefined} token
 */
export function withToken(url, token) {
  if (!token) return url;
  const sep = url.includes("?") ? "&" : "?";
  return `${url}${sep}token=${encodeURIComponent(token)}`;
}

/**
 * The unfiltered SSE stream: one per page, widgets filter by job id client side.
 * @param {Auth} [auth]
 */
export function streamUrl({ baseUrl, token } = {}) {
  return withToken(`${normalizeBaseUrl(baseUrl)}api/batch/events`, token);
}

/**
 * `api/batch/jobs/{id}` plus an optional sub-path and query string.
 * @param {Auth} auth
 * @param {string} jobId
 */
export function jobUrl({ baseUrl, token }, jobId, suffix = "", query = "") {
  const path = `${normalizeBaseUrl(baseUrl)}api/batch/jobs/${encodeURIComponent(jobId)}${suffix}`;
  return withToken(query ? `${path}?${query}` : path, token);
}

/**
 * `api/batch/jobs` with the list's query (SPEC §3: `status`, `limit`, `offset`).
 * @param {Auth} auth
 * @param {import("./types.js").ListQuery} query
 */
export function listUrl({ baseUrl, token }, { status, limit, offset }) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (status) params.set("status", status);
  return withToken(`${normalizeBaseUrl(baseUrl)}api/batch/jobs?${params}`, token);
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
 * @returns {Promise<any>} the parsed body (its shape is the route's, SPEC §3)
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
  const auth = { baseUrl, token };
  /**
   * @param {string} url
   * @param {AbortSignal} [signal]
   */
  const get = (url, signal) =>
    doFetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, signal })
      .then(readJson);
  /**
   * @param {string} url
   * @param {AbortSignal} [signal]
   */
  const post = (url, signal) => {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    const xsrf = getXsrf();
    if (xsrf) headers["X-XSRFToken"] = xsrf;
    if (token) headers.Authorization = `token ${token}`;
    return doFetch(url, { method: "POST", credentials: "same-origin", headers, body: "{}", signal })
      .then(readJson);
  };
  return {
    baseUrl: normalizeBaseUrl(baseUrl),
    getJob: (jobId, signal) => get(jobUrl(auth, jobId), signal),
    listJobs: (query, signal) => get(listUrl(auth, query), signal),
    getFailedItems: (jobId, limit = 20, signal) =>
      get(jobUrl(auth, jobId, "/items", `status=failed&limit=${limit}`), signal),
    getOutputs: (jobId, signal) => get(jobUrl(auth, jobId, "/outputs"), signal),
    // Writes go without ?token=: the header carries it, and XSRF guards the cookie path.
    cancel: (jobId, signal) => post(jobUrl({ baseUrl }, jobId, "/cancel"), signal),
    retry: (jobId, signal) => post(jobUrl({ baseUrl }, jobId, "/retry"), signal),
    fileHref: (path) => fileHref(baseUrl, path),
    downloadHref: (path) => downloadHref(baseUrl, path),
  };
}
