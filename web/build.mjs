// Bundle src/ into dist/: app-<hash>.js and app-<hash>.css (content-hashed, so the token server
// lets browsers cache them for good), index.html pointing at them (revalidated on each visit),
// and .gz/.br copies that the token server sends to browsers that accept them.
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const here = import.meta.dirname ?? new URL(".", import.meta.url).pathname;
const dist = join(here, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist);
const result = await build({
  entryPoints: { app: join(here, "src/main.ts"), style: join(here, "src/style.css") },
  outdir: dist,
  entryNames: "[name]-[hash]",
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020", "chrome90", "firefox90", "safari15"],
  legalComments: "external",
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
const find = (prefix, ext) => outputs.find((name) => name.startsWith(prefix) && name.endsWith(ext));
const html = (await readFile(join(here, "src/index.html"), "utf8"))
  .replace("{{js}}", find("app-", ".js"))
  .replace("{{css}}", find("style-", ".css"));
await writeFile(join(dist, "index.html"), html);

const sizes = [];
for (const name of [...outputs.filter((n) => /\.(js|css)$/.test(n)), "index.html"]) {
  const raw = await readFile(join(dist, name));
  const gz = gzipSync(raw, { level: 9 });
  const br = brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
  await writeFile(join(dist, `${name}.gz`), gz);
  await writeFile(join(dist, `${name}.br`), br);
  sizes.push(`${name} ${raw.length} B (gzip ${gz.length} B, brotli ${br.length} B)`);
}
console.log(`web client built in ${dist}: ${sizes.join("; ")}`);
