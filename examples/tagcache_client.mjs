#!/usr/bin/env node
// The tagcache README's blog example on a tagcachefs mount, through the Node
// package (clients/node; in a project, `npm install ./clients/node` and
// import from "tagcachefs").
//
//     node examples/tagcache_client.mjs MOUNTPOINT [READ_MOUNT]
//
// (READ_MOUNT: the daemon's --read-mount view, to read hits there.)
//
// `node examples/tagcache_client.mjs --race MOUNTPOINT KEY RECORD` is one
// contender of a single-flight test: it waits for a line on stdin (so that
// a test can release several processes together), then gets KEY with a
// compute step that sleeps 1 s and appends a line to RECORD, and prints
// "<source> <value>".

import assert from "node:assert/strict";
import { once } from "node:events";
import fs from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

import { Cache, json } from "../clients/node/index.js";

async function blogExample(mnt, readMount = null) {
  const cache = new Cache(mnt, { readMount, serializer: json });
  let runs = 0;
  const homePageContent = cache.wrap("blog-home", () => {
    runs += 1;
    return { bio: { name: "Huang junwen" }, recent_blogs: ["tagcache"], run: runs };
  }, { expire: 3600 * 24 * 7, tags: ["blog-new", "bio"] });

  const first = await homePageContent.lookup();
  assert.deepEqual([first.source, first.value.run], ["computed", 1]);
  assert.deepEqual(await homePageContent.lookup(), { value: first.value, source: "hit" });

  // The bio changed: every page showing it goes.
  assert.ok(await cache.invalidateTag("bio"));
  assert.equal(await cache.get("blog-home"), undefined);
  const again = await homePageContent.lookup();
  assert.deepEqual([again.source, again.value.run], ["computed", 2]);

  // One page alone; its content stays under stale/ until cleanup.
  assert.ok(await cache.invalidateKey("blog-home"));
  assert.equal(await cache.get("blog-home"), undefined);
  console.log("tagcache_client.mjs: the blog example held");
}

async function race(mnt, key, record) {
  await once(process.stdin, "data"); // released together with the others
  process.stdin.destroy();
  const got = await new Cache(mnt).lookup(key, async () => {
    await sleep(1000);
    fs.appendFileSync(record, `${process.pid}\n`);
    return `computed by ${process.pid} at ${((performance.timeOrigin + performance.now()) / 1000).toFixed(6)}`;
  }, { wait: 30 });
  process.stdout.write(`${got.source} ${got.value.toString()}\n`);
}

const args = process.argv.slice(2);
if (args.length === 4 && args[0] === "--race") {
  await race(...args.slice(1));
} else if (args.length === 1 || args.length === 2) {
  await blogExample(...args);
} else {
  console.error(`usage: node tagcache_client.mjs MOUNTPOINT [READ_MOUNT]
       node tagcache_client.mjs --race MOUNTPOINT KEY RECORD`);
  process.exit(2);
}
