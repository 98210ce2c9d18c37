// Just enough of a DOM for view.js and widget.js: no DOM library needed.

class FakeElement {
  constructor(doc, tagName) {
    this.ownerDocument = doc;
    this.tagName = tagName.toUpperCase();
    this.children = [];
    this.attributes = new Map();
    this.listeners = [];
    this.style = {};
    this.className = "";
    this.hidden = false;
    this.disabled = false;
    this.text = "";
  }

  get textContent() {
    return this.text + this.children.map((child) => child.textContent).join("");
  }

  set textContent(value) {
    this.children = [];
    this.text = String(value);
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  append(...nodes) {
    this.children.push(...nodes);
  }

  replaceChildren(...nodes) {
    this.text = "";
    this.children = [...nodes];
  }

  addEventListener(type, listener, options = {}) {
    const entry = { type, listener };
    this.listeners.push(entry);
    if (options.signal) {
      options.signal.addEventListener("abort", () => {
        this.listeners = this.listeners.filter((other) => other !== entry);
      });
    }
  }

  click() {
    for (const { type, listener } of [...this.listeners]) if (type === "click") listener({ type });
  }

  /** Every descendant with `className` among its classes. */
  findAll(className) {
    const found = [];
    for (const child of this.children) {
      if (child.className.split(" ").includes(className)) found.push(child);
      found.push(...child.findAll(className));
    }
    return found;
  }

  find(className) {
    return this.findAll(className)[0] || null;
  }
}

export function fakeDocument({ config = null, cookie = "" } = {}) {
  const doc = {
    cookie,
    createElement: (tag) => new FakeElement(doc, tag),
    getElementById(id) {
      if (id !== "jupyter-config-data" || config === null) return null;
      const script = new FakeElement(doc, "script");
      script.textContent = JSON.stringify(config);
      return script;
    },
  };
  return doc;
}
