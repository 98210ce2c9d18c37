// The bundle in batch_widget/static is committed; a stale one fails here.
import assert from "node:assert/strict";
import { test } from "node:test";

import { bundle, committed } from "../build.mjs";

test("the committed bundle equals a fresh build (run `npm run build`)", async () => {
  const [fresh, onDisk] = await Promise.all([bundle(), committed()]);
  assert.ok(Buffer.from(fresh.js).equals(onDisk.js), "batch_widget/static/widget.js is stale");
  assert.ok(Buffer.from(fresh.css).equals(onDisk.css), "batch_widget/static/widget.css is stale");
});

test("the bundle is an ES module with a default export for anywidget", async () => {
  const { js } = await bundle();
  const text = Buffer.from(js).toString("utf8");
  assert.match(text, /export\s*\{[^}]*\bas default\b[^}]*\}|export default/);
  assert.doesNotMatch(text, /\bimport\s.*from\s/, "everything is bundled");
});
