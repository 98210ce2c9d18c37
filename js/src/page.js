// What the page tells us about the server: the only module that reads the
// document for configuration. A token read here is passed on as a plain
// option and is never written to a widget trait (widget state is saved in
// notebooks).

/**
 * The page's Jupyter config (JupyterLab and Notebook 7 both embed it).
 *
 * @param {Document} [doc]
 * @returns {{baseUrl: string, token: string}}
 */
export function readPageConfig(doc = globalThis.document) {
  try {
    const element = doc && doc.getElementById("jupyter-config-data");
    if (element) {
      const data = JSON.parse(element.textContent || "{}");
      return { baseUrl: data.baseUrl || "/", token: data.token || "" };
    }
  } catch {
    // A malformed or missing config falls back to the server root and the cookie.
  }
  return { baseUrl: "/", token: "" };
}

/**
 * A cookie's raw value, read the way @jupyterlab/services reads `_xsrf`
 * (no decoding: tornado compares the value as it set it).
 * @param {string} name
 * @param {Document} [doc]
 */
export function readCookie(name, doc = globalThis.document) {
  const cookies = (doc && doc.cookie) || "";
  const match = cookies.match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
  return match ? match[1] : "";
}
