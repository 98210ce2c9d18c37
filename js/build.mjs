// Bundle js/src into batch_widget/static (committed, so `pip install` from a
// clean clone needs no npm). `bundle()` is shared with the freshness test.
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

export const OUTPUTS = {
  js: here("../batch_widget/static/widget.js"),
  css: here("../batch_widget/static/widget.css"),
};

const BANNER = "/* batch_widget front end, built from js/src by `npm run build`: do not edit. */";

/** Build both files in memory; returns {js, css} as Uint8Arrays. */
export async function bundle() {
  const common = {
    bundle: true,
    write: false,
    minify: false,
    legalComments: "none",
    logLevel: "silent",
    banner: { js: BANNER, css: BANNER },
    // Path comments in the bundle are relative to this: same bytes from any cwd.
    absWorkingDir: here("."),
  };
  const js = await esbuild.build({
    ...common,
    entryPoints: [here("src/widget.js")],
    format: "esm",
    target: "es2020",
    outfile: "widget.js",
  });
  const css = await esbuild.build({
    ...common,
    entryPoints: [here("src/widget.css")],
    outfile: "widget.css",
  });
  return { js: js.outputFiles[0].contents, css: css.outputFiles[0].contents };
}

/** The committed files, for comparison with a fresh build. */
export async function committed() {
  return { js: await readFile(OUTPUTS.js), css: await readFile(OUTPUTS.css) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const built = await bundle();
  await mkdir(here("../batch_widget/static"), { recursive: true });
  await writeFile(OUTPUTS.js, built.js);
  await writeFile(OUTPUTS.css, built.css);
  console.log(`wrote ${OUTPUTS.js} (${built.js.length} bytes), ${OUTPUTS.css} (${built.css.length} bytes)`);
}
