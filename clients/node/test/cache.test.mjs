// get/set/delete/getOrCompute against a real mount, checked from outside
// the package.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Cache, NEVER, json } from "tagcachefs";
import { FAST, MNT, holdLock, keys, read, secondsLeft, stale, tagged, unique } from "./mount.mjs";

const cache = () => new Cache(MNT, { readMount: FAST });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("set then get returns the bytes other programs read in keys/", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, Buffer.from("<h1>home</h1>"));
  assert.deepEqual(await c.get(k), Buffer.from("<h1>home</h1>"));
  assert.deepEqual(read(keys(k)), Buffer.from("<h1>home</h1>"));
  await c.set(k, "héllo");
  assert.equal((await c.get(k)).toString(), "héllo");
  await c.set(k, new Uint8Array([1, 2, 3]));
  assert.deepEqual(await c.get(k), Buffer.from([1, 2, 3]));
  assert.deepEqual(await c.getOrCompute(`${k}-2`, () => "str"), Buffer.from("str"), "as a hit returns it");
});

test("get of a missing key is undefined; has says whether it is live", async (t) => {
  const c = cache();
  const k = unique(t);
  assert.equal(await c.get(k), undefined);
  assert.equal(await c.has(k), false);
  await c.set(k, "v");
  assert.equal(await c.has(k), true);
});

test("set gives the entry its tags and expiry", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, "v", { expire: 600, tags: [`${k}-a`, `${k}-b`] });
  assert.deepEqual(tagged(`${k}-a`), [k]);
  assert.deepEqual(tagged(`${k}-b`), [k]);
  assert.equal(fs.statSync(keys(k)).nlink, 3);
  const left = secondsLeft(k);
  assert.ok(left > 590 && left <= 601, `${left} s left`);
});

test("each set replaces content, tags and expiry together", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, "one", { expire: 600, tags: new Set([`${k}-t`]) });
  await c.set(k, "two");
  assert.equal((await c.get(k)).toString(), "two");
  assert.deepEqual(tagged(`${k}-t`), []);
  assert.equal(fs.statSync(keys(k)).nlink, 1);
  assert.equal(fs.statSync(keys(k)).mtimeMs / 1000, NEVER, "expire null: never");
  await c.set(k, "three", { expire: 0 });
  assert.equal(fs.statSync(keys(k)).mtimeMs / 1000, NEVER, "expire 0: never");
});

test("an empty value is cached and visible at once", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, "", { expire: 60, tags: [`${k}-t`] });
  assert.deepEqual(await c.get(k), Buffer.alloc(0));
  assert.deepEqual(tagged(`${k}-t`), [k]);
  let calls = 0;
  const empty = () => {
    calls += 1;
    return "";
  };
  assert.equal((await c.lookup(`${k}-2`, empty)).source, "computed");
  assert.equal((await c.lookup(`${k}-2`, empty)).source, "hit");
  assert.equal(calls, 1);
});

test("delete invalidates, and the content stays under stale/", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, "old");
  assert.equal(await c.delete(k), true);
  assert.equal(await c.get(k), undefined);
  assert.equal(await c.delete(k), false);
  assert.equal(await c.invalidateKey(k), false);
  assert.deepEqual(read(stale(k)), Buffer.from("old"));
});

test("invalidateTag invalidates every entry carrying the tag", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, "a", { tags: [`${k}-t`] });
  await c.set(`${k}-2`, "b", { tags: [`${k}-t`, `${k}-u`] });
  assert.equal(await c.invalidateTag(`${k}-t`), true);
  assert.equal(await c.get(k), undefined);
  assert.equal(await c.get(`${k}-2`), undefined);
  assert.equal(await c.invalidateTag(`${k}-t`), false);
  await assert.rejects(c.invalidateTag("a b"), TypeError);
});

test("the json serializer stores objects other programs can parse", async (t) => {
  const c = new Cache(MNT, { readMount: FAST, serializer: json });
  const k = unique(t);
  const value = { bio: { name: "Huang junwen" }, recent_blogs: ["tagcache"] };
  await c.set(k, value);
  assert.deepEqual(await c.get(k), value);
  assert.deepEqual(JSON.parse(read(keys(k))), value);
  assert.deepEqual(await c.getOrCompute(`${k}-2`, async () => [1, 2]), [1, 2]);
  assert.deepEqual(await c.get(`${k}-2`), [1, 2]);
});

test("without a serializer only strings and bytes are values", async (t) => {
  const c = cache();
  const k = unique(t);
  await assert.rejects(c.set(k, { a: 1 }), TypeError);
  await assert.rejects(c.getOrCompute(k, () => 42), TypeError);
  assert.equal(await c.get(k), undefined);
  assert.equal((await c.getOrCompute(k, () => "free")).toString(), "free", "the lock was released");
});

test("keys, tags and expiries the mount would refuse are refused before anything is written", async (t) => {
  const c = cache();
  const k = unique(t);
  for (const bad of ["", ".", "..", "a/b", "a\0b", "x".repeat(126), 42]) {
    await assert.rejects(c.set(bad, "v"), TypeError, String(bad));
    await assert.rejects(c.getOrCompute(bad, () => "v"), TypeError, String(bad));
    await assert.rejects(c.get(bad), TypeError, String(bad));
  }
  for (const tags of [["a b"], ["a,b"], [""], ["t".repeat(126)], "bio"]) {
    await assert.rejects(c.set(k, "v", { tags }), TypeError, String(tags));
    await assert.rejects(c.getOrCompute(k, () => "v", { tags }), TypeError, String(tags));
  }
  const many = Array.from({ length: 30 }, (_, i) => `x${i}-${k.slice(-8)}`);
  await assert.rejects(c.set(k, "v", { tags: many }), RangeError, "more than put/ can carry");
  for (const expire of [-1, 2 ** 32 + 1, 1.5]) {
    await assert.rejects(c.set(k, "v", { expire }), RangeError, String(expire));
  }
  await assert.rejects(c.set(k, "v", { expire: "60" }), TypeError);
  // put/ takes a component starting with expire= or tags= as a parameter.
  await assert.rejects(c.set(`expire=5-${k}`, "v"), TypeError);
  assert.equal(await c.get(`expire=5-${k}`), undefined, "such keys can still be read");
  assert.equal(await c.get(k), undefined);
  assert.equal((await c.getOrCompute(k, () => "free")).toString(), "free", "no lock left held");
  assert.throws(() => new Cache(os.tmpdir()), /not a tagcachefs mount/);
});

test("getOrCompute computes once, then hits", async (t) => {
  const c = cache();
  const k = unique(t);
  let calls = 0;
  const compute = async () => {
    calls += 1;
    await sleep(10);
    return "page";
  };
  const first = await c.lookup(k, compute, { expire: 600, tags: [`${k}-t`] });
  assert.deepEqual([first.value.toString(), first.source], ["page", "computed"]);
  const second = await c.lookup(k, compute);
  assert.deepEqual([second.value.toString(), second.source], ["page", "hit"]);
  assert.equal((await c.getOrCompute(k, compute)).toString(), "page");
  assert.equal(calls, 1);
  assert.deepEqual(tagged(`${k}-t`), [k]);
  assert.ok(secondsLeft(k) > 590);
});

test("a failing compute caches nothing and frees the lock", async (t) => {
  const c = cache();
  const k = unique(t);
  await assert.rejects(
    c.getOrCompute(k, async () => {
      throw new Error("backend down");
    }, { tags: [`${k}-t`] }),
    /backend down/,
  );
  assert.equal(await c.get(k), undefined);
  assert.equal(read(stale(k)), null, "nothing was committed");
  assert.equal((await c.lookup(k, () => "ok")).source, "computed");
});

test("stale is served while another process holds the lock", async (t) => {
  const c = cache();
  const k = unique(t);
  await c.set(k, "old");
  await c.invalidateKey(k);
  const holder = holdLock(k);
  try {
    const r = await c.lookup(k, () => "new", { wait: 5 });
    assert.deepEqual([r.value.toString(), r.source], ["old", "stale"]);
  } finally {
    fs.closeSync(holder); // gives up: nothing written, nothing committed
  }
  assert.equal((await c.lookup(k, () => "new")).source, "computed");
});

test("a waiting process gets the holder's value", async (t) => {
  const c = cache();
  const k = unique(t);
  const holder = holdLock(k);
  const start = performance.now();
  setTimeout(() => {
    fs.writeSync(holder, "from the holder");
    fs.closeSync(holder); // the commit
  }, 300);
  const r = await c.lookup(k, () => "not me", { wait: 10 });
  assert.deepEqual([r.value.toString(), r.source], ["from the holder", "waited"]);
  const took = performance.now() - start;
  assert.ok(took >= 250 && took < 5000, `${took} ms`);
});

test("past the wait it computes without the lock, and backs off from 5 ms doubling to 250 ms", async (t) => {
  const c = cache();
  const k = unique(t);
  // Every poll reads keys/<key>: record when.
  const polls = [];
  const open = fsp.open;
  fsp.open = (file, ...rest) => {
    if (file === path.join(FAST ?? MNT, "keys", k)) polls.push(performance.now());
    return open(file, ...rest);
  };
  const holder = holdLock(k);
  try {
    const start = performance.now();
    const r = await c.lookup(k, () => "done anyway", { wait: 1.2, tags: [`${k}-t`] });
    const waited = performance.now() - start;
    assert.deepEqual([r.value.toString(), r.source], ["done anyway", "fallback"]);
    assert.ok(waited >= 1200 && waited < 5000, `${waited} ms`);
    assert.equal((await c.get(k)).toString(), "done anyway");
    assert.deepEqual(tagged(`${k}-t`), [k]);
  } finally {
    fsp.open = open;
    fs.closeSync(holder);
  }
  assert.equal((await c.get(k)).toString(), "done anyway", "the holder gave up: nothing committed");
  // polls: the first read, the re-read after EEXIST, then one per sleep.
  const gaps = polls.slice(2).map((p, i) => p - polls[i + 1]);
  const expected = [5, 10, 20, 40, 80, 160, 250, 250];
  for (const [i, want] of expected.entries()) {
    assert.ok(gaps[i] >= want - 1 && gaps[i] < want + 100, `gap ${i}: ${gaps[i]} ms, expected ${want}`);
  }
  assert.ok(gaps.every((g) => g < 350), `${gaps}`);
});

test("concurrent lookups in one process compute once", async (t) => {
  const c = cache();
  const k = unique(t);
  let calls = 0;
  const compute = async () => {
    calls += 1;
    await sleep(500);
    return "once";
  };
  const results = await Promise.all(Array.from({ length: 5 }, () => c.lookup(k, compute)));
  assert.equal(calls, 1);
  assert.deepEqual(results.map((r) => r.source).sort(), ["computed", "waited", "waited", "waited", "waited"]);
  assert.ok(results.every((r) => r.value.toString() === "once"));
});

const CONTENDER = `
import fs from "node:fs";
import { once } from "node:events";
import { Cache } from ${JSON.stringify(new URL("../index.js", import.meta.url).href)};
const [mnt, key, record] = process.argv.slice(1);
await once(process.stdin, "data");
const r = await new Cache(mnt).lookup(key, async () => {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  fs.appendFileSync(record, process.pid + "\\n");
  return "computed by " + process.pid;
});
process.stdout.write(r.source + " " + r.value + "\\n");
process.exit(0);
`;

test("processes compute once", async (t) => {
  const k = unique(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tagcachefs-node-"));
  const record = path.join(dir, "record");
  try {
    const children = Array.from({ length: 5 }, () =>
      spawn(process.execPath, ["--input-type=module", "-e", CONTENDER, MNT, k, record], {
        stdio: ["pipe", "pipe", "pipe"],
      }),
    );
    const outputs = children.map(
      (child) =>
        new Promise((resolve) => {
          let out = "";
          let err = "";
          child.stdout.on("data", (d) => (out += d));
          child.stderr.on("data", (d) => (err += d));
          child.on("close", (code) => resolve({ code, out, err }));
        }),
    );
    for (const child of children) child.stdin.end("go\n"); // released together
    const results = await Promise.all(outputs);
    for (const r of results) assert.equal(r.code, 0, r.err);
    const computedBy = fs.readFileSync(record, "utf8").trim().split("\n");
    assert.equal(computedBy.length, 1, `${computedBy}`);
    const lines = results.map((r) => r.out.trim().split(" ", 1)[0]);
    assert.equal(lines.filter((how) => how === "computed").length, 1, `${lines}`);
    assert.ok(lines.includes("waited"), `${lines}`);
    assert.ok(results.every((r) => r.out.trim().endsWith(`computed by ${computedBy[0]}`)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the fast view serves hits and sees every change at once", { skip: FAST === null && "TAGCACHEFS_FAST is not set" }, async (t) => {
  const c = cache();
  assert.equal(c.readMount, path.resolve(FAST));
  const k = unique(t);
  await c.set(k, "one", { tags: [`${k}-t`] });
  assert.deepEqual(read(path.join(FAST, "keys", k)), Buffer.from("one"));
  await c.set(k, "two", { tags: [`${k}-t`] });
  assert.equal((await c.get(k)).toString(), "two");
  assert.ok(await c.invalidateTag(`${k}-t`));
  assert.equal(await c.get(k), undefined);
  assert.equal((await c.getOrCompute(k, () => "three")).toString(), "three");
  assert.ok(await c.delete(k));
  assert.equal(await c.get(k), undefined);
});

test("stats are the daemon's counters", async (t) => {
  const c = cache();
  const before = await c.stats();
  assert.ok(fs.statSync(before.store).isDirectory());
  await c.set(unique(t), "v");
  assert.ok((await c.stats()).commits > before.commits);
});

test("the package runs no child process and has no dependency", () => {
  const dir = path.dirname(fileURLToPath(import.meta.url));
  const source = fs.readFileSync(path.join(dir, "..", "index.js"), "utf8");
  assert.doesNotMatch(source, /child_process|require\(/);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "..", "package.json"), "utf8"));
  assert.equal(pkg.dependencies, undefined);
});
