// wrap(), the tagcache library's decorator, and the README's blog example.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

import { Cache, CacheParam, json } from "tagcachefs";
import { FAST, MNT, holdLock, keys, read, secondsLeft, stale, tagged, unique } from "./mount.mjs";

const README = new URL("../README.md", import.meta.url);
const EXAMPLE_DIR = "/tmp/blog_cache";

/** The README's blog example (its first js block), as a module run against
 * the mount, exporting `names`. */
async function runExample(code, names) {
  const index = new URL("../index.js", import.meta.url).href;
  const source = code.replace('from "tagcachefs"', `from ${JSON.stringify(index)}`).replaceAll(EXAMPLE_DIR, MNT);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagcachefs-readme-"));
  const file = path.join(dir, "example.mjs");
  fs.writeFileSync(file, `${source}\nexport { ${names.join(", ")} };\n`);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function blogExample() {
  const blocks = [...fs.readFileSync(README, "utf8").matchAll(/```js\n(.*?)```/gs)].map((m) => m[1]);
  assert.ok(blocks[0].startsWith('import { Cache, json } from "tagcachefs";\n'));
  assert.ok(blocks[0].includes(EXAMPLE_DIR));
  return blocks[0];
}

test("the README's blog example caches with the tags and expiry set at runtime", async () => {
  const [setup, later] = blogExample().split("// later");
  const { cache, content, homePageContent } = await runExample(setup, ["cache", "content", "homePageContent"]);
  assert.deepEqual(content, { bio: { name: "Huang junwen" }, recent_blogs: ["tagcache"] });
  for (const t of ["bio", "blog-new", "some-more-tag"]) assert.deepEqual(tagged(t), ["blog-home"], t);
  const left = secondsLeft("blog-home");
  assert.ok(left > 3600 * 24 - 60 && left <= 3600 * 24 + 1, `${left} s left`);
  assert.deepEqual(JSON.parse(read(keys("blog-home"))), content);
  assert.equal((await homePageContent.lookup()).source, "hit");
  await runExample(`import { Cache, json } from "tagcachefs";\nconst cache = new Cache("${EXAMPLE_DIR}", { serializer: json });\n// later${later}`, ["cache"]);
  assert.equal(read(keys("blog-home")), null);
  assert.deepEqual(JSON.parse(read(stale("blog-home"))), content);
  assert.equal((await homePageContent.lookup()).source, "computed");
  assert.ok(await cache.invalidateKey("blog-home"));
});

test("a wrapped function runs once, then its value is served", async (t) => {
  const cache = new Cache(MNT, { readMount: FAST, serializer: json });
  const k = unique(t);
  const params = [];
  const page = cache.wrap(k, (param) => {
    params.push(param);
    return { run: params.length };
  }, { expire: 600, tags: [`${k}-t`] });
  assert.deepEqual(await page(), { run: 1 });
  assert.deepEqual(await page(), { run: 1 });
  assert.equal((await page.lookup()).source, "hit");
  assert.equal(params.length, 1);
  assert.ok(params[0] instanceof CacheParam);
  assert.equal(params[0].expire, 600);
  assert.deepEqual([...params[0].tags], [`${k}-t`]);
  assert.deepEqual(tagged(`${k}-t`), [k]);
  assert.ok(secondsLeft(k) > 590);
});

test("each run gets a fresh parameter object", async (t) => {
  const cache = new Cache(MNT);
  const k = unique(t);
  const seen = [];
  const page = cache.wrap(k, (param) => {
    seen.push([...param.tags]);
    param.tags.add(`b-${k}`);
    param.disable();
    return "x";
  }, { tags: [`a-${k}`] });
  await page();
  await page();
  assert.deepEqual(seen, [[`a-${k}`], [`a-${k}`]]);
});

test("tags and expiry changed at runtime are what is cached, and the lock is given up", async (t) => {
  const cache = new Cache(MNT, { readMount: FAST });
  const k = unique(t);
  const page = cache.wrap(k, async (param) => {
    param.tags.add(`${k}-b`);
    param.tags.delete(`${k}-a`);
    param.expire = 100;
    return "page";
  }, { expire: 600, tags: [`${k}-a`] });
  assert.deepEqual(await page.lookup(), { value: Buffer.from("page"), source: "computed" });
  assert.deepEqual(tagged(`${k}-b`), [k]);
  assert.deepEqual(tagged(`${k}-a`), []);
  const left = secondsLeft(k);
  assert.ok(left > 90 && left <= 101, `${left} s left`);
  assert.equal(fs.statSync(keys(k)).nlink, 2);
  // Nothing holds the lock: once invalidated, the next run computes.
  await cache.invalidateKey(k);
  assert.equal((await page.lookup()).source, "computed");

  const empty = cache.wrap(`${k}-2`, (param) => {
    param.expire = 50;
    return "";
  });
  assert.deepEqual(await empty(), Buffer.alloc(0));
  assert.deepEqual(await cache.get(`${k}-2`), Buffer.alloc(0));
  assert.ok(secondsLeft(`${k}-2`) <= 51);
});

test("a result not to cache is returned and the key stays free", async (t) => {
  const cache = new Cache(MNT);
  const k = unique(t);
  const page = cache.wrap(k, (param) => {
    param.disable();
    return "not now";
  }, { tags: [`${k}-t`] });
  assert.deepEqual(await page.lookup(), { value: "not now", source: "computed" });
  assert.equal(read(keys(k)), null);
  assert.equal(read(stale(k)), null, "nothing was committed");
  assert.equal((await cache.getOrCompute(k, () => "free")).toString(), "free");
});

test("bad tags or expiry set at runtime reject and cache nothing", async (t) => {
  const cache = new Cache(MNT);
  const k = unique(t);
  await assert.rejects(cache.wrap(k, (param) => {
    param.tags.add("a b");
    return "x";
  })(), TypeError);
  await assert.rejects(cache.wrap(k, (param) => {
    param.expire = -5;
    return "x";
  })(), RangeError);
  assert.equal(read(keys(k)), null);
  assert.equal((await cache.getOrCompute(k, () => "free")).toString(), "free");
  assert.throws(() => cache.wrap("a/b", () => "x"), TypeError);
  assert.throws(() => cache.wrap(k, "not a function"), TypeError);
});

test("a wrapped function serves stale while another process computes", async (t) => {
  const cache = new Cache(MNT, { serializer: json });
  const k = unique(t);
  const page = cache.wrap(k, () => "new");
  await cache.set(k, "old");
  await cache.invalidateKey(k);
  const holder = holdLock(k);
  try {
    assert.deepEqual(await page.lookup(), { value: "old", source: "stale" });
  } finally {
    fs.closeSync(holder);
  }
  assert.deepEqual(await page.lookup(), { value: "new", source: "computed" });
});
