#!/usr/bin/env node
// A small tagcachefs client for Node 20: the tagcache library's API over
// plain files, the same as examples/tagcache_client.py.
//
// Built-in modules only (node:fs, node:path, node:child_process for
// setfattr). `mnt` is a tagcachefs mount point (keys/, tags/, stale/ under
// it).
//
//     const value = getOrCompute(mnt, "blog-home", renderHome,
//                                { tags: ["blog-new", "bio"], expire: 7 * 24 * 3600 });
//     invalidateTag(mnt, "bio");
//
// getOrCompute() (synchronous, like the Python client):
//   * hit: read keys/<key>;
//   * miss: open keys/<key> with O_CREAT|O_EXCL. Success means this process
//     holds the key's single-flight lock (on every mount of the store, across
//     processes and hosts): it computes, tags the writing descriptor, sets
//     its expiry, writes, and close() commits. If compute() throws, the
//     descriptor is closed with nothing written, which commits nothing and
//     releases the lock for the next process;
//   * EEXIST: someone else is computing (or just committed). Serve
//     stale/<key> if the previous content is still there; otherwise poll
//     keys/<key> with an exponential back-off (retrying the O_EXCL open each
//     round, so a holder that gave up is replaced at once) for at most
//     `wait` seconds. Past that bound the holder is presumed stuck: compute
//     here and store with a plain O_CREAT|O_TRUNC write, which the lock does
//     not bind (the last commit wins).
//
// Node has no xattr API, so the two cache parameters go on the writing
// descriptor in two ways (see store()):
//   * the expiry as the descriptor's mtime (fs.futimesSync): the mount takes
//     the mtime set on a writing descriptor as that version's expiry. (An
//     expiry given this way records no TTL: `touch keys/<key>` then renews
//     it for the mount's --default-expire, where the Python client's
//     user.expire would renew it for `expire`.)
//   * the tags with `setfattr -n user.tags -v a,b /proc/<pid>/fd/<fd>`, run
//     as a child process: while an entry created with O_EXCL is uncommitted,
//     the mount sends xattrs set on its node, from any process, to its
//     writer (the kernel does not say which descriptor an xattr call came
//     from, and an uncommitted node has no other use). The tags therefore
//     commit together with the content, in one version: no moment where the
//     entry is live without its tags, so an rmdir of a tag can never miss it.
//
// Run as a script it replays the tagcache README's blog example against a
// mount with assertions:
//
//     node tagcache_client.mjs MOUNTPOINT [READ_MOUNT]
//
// `node tagcache_client.mjs --race MOUNTPOINT KEY RECORD` is one contender of
// a single-flight test, with the Python client's protocol: it waits for a
// line on stdin (so that a test can release several processes together),
// then getOrCompute()s KEY with a compute step that sleeps 1 s and appends a
// line to RECORD, and prints "<how> <value>".

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const CHUNK = 1 << 20;
const NEVER = 2 ** 32; // the store's "never expires" mtime
const { O_CREAT, O_EXCL, O_TRUNC, O_WRONLY } = fs.constants;

/** Blocks the thread for `ms` milliseconds (no event loop needed). */
function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ms));
}

/** The content of `file` (a Buffer), or null if it does not exist. (libuv
 * opens everything O_CLOEXEC; openSync/readSync send no ioctl.) */
function readOrNull(file) {
  let fd;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    if (e.code === "ENOENT") return null;
    throw e;
  }
  try {
    const parts = [];
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) return Buffer.concat(parts);
      parts.push(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

function asBuffer(value) {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "string") return Buffer.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw new TypeError(`compute() must return a string or a Buffer, not ${typeof value}`);
}

/**
 * Sets the cache parameters on the writing descriptor `fd`, writes `value`
 * and closes `fd`; close() commits and throws the commit's error.
 *
 * The order matters. Spawning setfattr forks this process: the child gets a
 * copy of `fd` and closes it at exec (close-on-exec), and every close of a
 * descriptor of the mount is a commit point. The mount ignores a foreign
 * close only once this descriptor has written; a close after nothing but an
 * mtime or xattr change commits (an empty version, which also releases the
 * lock). So the tags are set first, while the descriptor has changed
 * nothing, and only then the expiry and the content. For the same reason
 * compute() runs before any of this: whatever it spawns closes `fd` too.
 * (Nothing else in the process may spawn meanwhile, e.g. from a worker
 * thread.)
 */
function store(fd, value, tags, expire) {
  try {
    const list = typeof tags === "string" ? tags : (tags ?? []).join(",");
    if (list) {
      // Any process's setxattr on an uncommitted O_EXCL entry goes to its
      // writer: setfattr reaches our descriptor's node by /proc/<pid>/fd/<fd>.
      execFileSync("setfattr", ["-n", "user.tags", "-v", list,
        `/proc/${process.pid}/fd/${fd}`], { stdio: ["ignore", "ignore", "pipe"] });
    }
    if (expire !== null && expire !== undefined) {
      const expiry = expire === 0 ? NEVER : Date.now() / 1000 + Math.floor(expire);
      fs.futimesSync(fd, expiry, expiry); // the mtime of a writing fd = its expiry
    }
    for (let off = 0; off < value.length;) {
      off += fs.writeSync(fd, value, off, value.length - off);
    }
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  fs.closeSync(fd); // the commit: throws its error (ENOSPC, EIO, ESTALE...)
}

/**
 * getOrCompute() that also says where the value came from: returns
 * {value, how} with how one of "hit", "computed", "stale", "waited" (another
 * process computed it while this one polled) or "fallback" (`wait` ran out:
 * computed here without the lock).
 */
export function lookup(mnt, key, compute, {
  tags = [], expire = 0, wait = 30, readMnt = null, maxDelay = 0.25,
} = {}) {
  // Refused before anything is locked: once the tags are on the descriptor,
  // a failing futimes would leave a change that the close commits.
  if (expire !== null && expire !== undefined && !(expire >= 0 && expire <= NEVER)) {
    throw new RangeError(`expire must be seconds, 0 to 2^32: ${expire}`);
  }
  const file = path.join(mnt, "keys", key);
  const hitFile = readMnt ? path.join(readMnt, "keys", key) : file;
  let deadline = null;
  let delay = 0.005;
  for (;;) {
    const value = readOrNull(hitFile);
    if (value !== null) return { value, how: deadline === null ? "hit" : "waited" };
    let fd = null;
    try {
      fd = fs.openSync(file, O_CREAT | O_EXCL | O_WRONLY, 0o644);
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
    }
    if (fd !== null) {
      let computed;
      try {
        computed = asBuffer(compute());
      } catch (e) {
        fs.closeSync(fd); // nothing written: nothing committed, lock released
        throw e;
      }
      store(fd, computed, tags, expire);
      return { value: computed, how: "computed" };
    }
    // Someone holds the single-flight lock, or committed just now.
    if (deadline === null) {
      const stale = readOrNull(path.join(mnt, "stale", key));
      if (stale !== null) return { value: stale, how: "stale" };
      deadline = performance.now() + wait * 1000;
    }
    const left = deadline - performance.now();
    if (left <= 0) break;
    sleepMs(Math.min(delay * 1000, left));
    delay = Math.min(delay * 2, maxDelay);
  }
  const computed = asBuffer(compute());
  // Usually a new name (CREATE: an uncommitted node whose xattrs go to this
  // writer). If the holder committed in between, this opens the live entry,
  // and setfattr from another process then retags that entry before this
  // write replaces it: the same key's tags, so the end result is the same.
  const fd = fs.openSync(file, O_CREAT | O_TRUNC | O_WRONLY, 0o644);
  store(fd, computed, tags, expire);
  return { value: computed, how: "fallback" };
}

/**
 * The cached value of `key` on the tagcachefs mount `mnt` (a Buffer), or
 * compute() it (synchronously: a string or a Buffer) and cache it with
 * `tags` and `expire`.
 *
 * tags: tag names (an array, or a comma-separated string).
 * expire: seconds to live; 0 = never expires (as in tagcache); null = the
 *   mount's --default-expire.
 * wait: the bound, in seconds, on waiting for another process that holds
 *   the key's single-flight lock when there is no stale content to serve.
 *   It polls with a back-off from 5 ms doubling to 250 ms; once `wait` has
 *   passed it computes the value itself and stores it without the lock (last
 *   commit wins). Choose it above your slowest compute().
 * readMnt: the daemon's read-only fast view (--read-mount), if any: hits are
 *   read there; misses, locks and writes still go through `mnt`.
 */
export function getOrCompute(mnt, key, compute, options = {}) {
  return lookup(mnt, key, compute, options).value;
}

/** Invalidates every entry carrying `tag` (rmdir tags/<tag>). Returns false
 * if there was no such tag. */
export function invalidateTag(mnt, tag) {
  try {
    fs.rmdirSync(path.join(mnt, "tags", tag));
  } catch (e) {
    if (e.code === "ENOENT") return false;
    throw e;
  }
  return true;
}

/** Invalidates one entry (its content stays under stale/ until cleanup).
 * Returns false if it was not live. */
export function invalidateKey(mnt, key) {
  try {
    fs.unlinkSync(path.join(mnt, "keys", key));
  } catch (e) {
    if (e.code === "ENOENT") return false;
    throw e;
  }
  return true;
}

/** The tagcache README's blog example, checked step by step. */
function blogExample(mnt, readMnt = null) {
  const week = 3600 * 24 * 7;
  let runs = 0;
  const homePageContent = () => {
    runs += 1;
    return JSON.stringify({ bio: { name: "Huang junwen" }, recent_blogs: ["tagcache"], run: runs });
  };
  const home = () => lookup(mnt, "blog-home", homePageContent,
    { tags: ["blog-new", "bio"], expire: week, readMnt });
  const inFast = (key) => readOrNull(path.join(readMnt, "keys", key));

  const first = home();
  assert.deepEqual([first.how, runs], ["computed", 1]);
  assert.equal(JSON.parse(first.value).run, 1);
  const second = home();
  assert.deepEqual([second.how, runs], ["hit", 1]);
  assert.deepEqual(second.value, first.value);

  // The entry: size, nlink = tags + 1, mtime = expiry; tags/ lists it, as
  // the same inode. (No getxattr in Node: the tags are read from tags/.)
  const key = path.join(mnt, "keys", "blog-home");
  const st = fs.statSync(key);
  assert.equal(st.size, first.value.length);
  assert.equal(st.nlink, 3, "nlink = two tags + 1");
  assert.ok(Math.abs(st.mtimeMs / 1000 - (Date.now() / 1000 + week)) < 60, "mtime is the expiry");
  for (const t of ["bio", "blog-new"]) {
    assert.deepEqual(fs.readdirSync(path.join(mnt, "tags", t)), ["blog-home"]);
    assert.equal(fs.statSync(path.join(mnt, "tags", t, "blog-home")).ino, st.ino);
  }

  // The bio changed.
  assert.ok(invalidateTag(mnt, "bio"));
  assert.ok(!invalidateTag(mnt, "bio"));
  // Checked with open(), which is what the mount guarantees once rmdir has
  // returned (a stat can still succeed for a few milliseconds).
  assert.equal(readOrNull(key), null);
  assert.ok(!fs.readdirSync(path.join(mnt, "keys")).includes("blog-home"));
  if (readMnt) assert.equal(inFast("blog-home"), null);
  assert.deepEqual(readOrNull(path.join(mnt, "stale", "blog-home")), first.value);

  // The next request regenerates it; the new version is live again.
  const third = home();
  assert.deepEqual([third.how, runs], ["computed", 2]);
  assert.equal(JSON.parse(third.value).run, 2);
  assert.deepEqual(readOrNull(key), third.value);
  if (readMnt) assert.deepEqual(inFast("blog-home"), third.value);
  assert.equal(fs.statSync(key).nlink, 3);

  // A compute that fails commits nothing and leaves the key free.
  assert.throws(() => getOrCompute(mnt, "broken", () => {
    throw new Error("backend down");
  }), /backend down/);
  assert.equal(readOrNull(path.join(mnt, "keys", "broken")), null);
  assert.equal(getOrCompute(mnt, "broken", () => "ok").toString(), "ok");

  // An expiry the mount would refuse is refused before anything is locked
  // or cached.
  assert.throws(() => getOrCompute(mnt, "bad-expire", () => "x", { tags: ["t"], expire: -1 }),
    RangeError);
  assert.equal(readOrNull(path.join(mnt, "keys", "bad-expire")), null);

  // expire = 0 (the default) never expires: mtime 2^32.
  assert.equal(fs.statSync(path.join(mnt, "keys", "broken")).mtimeMs / 1000, NEVER);

  // Invalidating one key: served stale while a holder regenerates it.
  assert.ok(invalidateKey(mnt, "blog-home"));
  if (readMnt) assert.equal(inFast("blog-home"), null);
  let holder = fs.openSync(key, O_CREAT | O_EXCL | O_WRONLY); // "someone else computing"
  try {
    const r = lookup(mnt, "blog-home", homePageContent, { wait: 0.1, readMnt });
    assert.deepEqual([r.how, runs], ["stale", 2]);
    assert.deepEqual(r.value, third.value);
  } finally {
    fs.closeSync(holder); // gives up: nothing written, nothing committed
  }

  // A holder that never finishes: past `wait`, compute here and store
  // without the lock (tagged all the same).
  const stuck = path.join(mnt, "keys", "stuck");
  holder = fs.openSync(stuck, O_CREAT | O_EXCL | O_WRONLY);
  try {
    const t0 = performance.now();
    const r = lookup(mnt, "stuck", () => "done anyway", { wait: 0.3, tags: ["blog-new"] });
    const waited = (performance.now() - t0) / 1000;
    assert.deepEqual([r.how, r.value.toString()], ["fallback", "done anyway"]);
    assert.ok(waited >= 0.3 && waited < 5, `waited ${waited} s`);
    assert.equal(readOrNull(stuck).toString(), "done anyway");
  } finally {
    fs.closeSync(holder);
  }
  assert.equal(readOrNull(stuck).toString(), "done anyway"); // the holder gave up: nothing committed
  assert.deepEqual(fs.readdirSync(path.join(mnt, "tags", "blog-new")), ["stuck"]); // blog-home: invalidated
  console.log("tagcache_client.mjs: the blog example held");
}

/** Reads one line from stdin, synchronously. */
function readLine() {
  const buf = Buffer.alloc(1);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, 1, null);
    } catch (e) {
      if (e.code === "EAGAIN") {
        sleepMs(5);
        continue;
      }
      throw e;
    }
    if (n === 0 || buf[0] === 0x0a) return;
  }
}

/** One contender of the single-flight test. */
function race(mnt, key, record) {
  readLine(); // released together with the others
  const compute = () => {
    sleepMs(1000);
    fs.appendFileSync(record, `${process.pid}\n`);
    return `computed by ${process.pid} at ${((performance.timeOrigin + performance.now()) / 1000).toFixed(6)}`;
  };
  const { value, how } = lookup(mnt, key, compute, { expire: 0, wait: 30 });
  process.stdout.write(`${how} ${value.toString()}\n`);
}

const USAGE = `usage: node tagcache_client.mjs MOUNTPOINT [READ_MOUNT]
       node tagcache_client.mjs --race MOUNTPOINT KEY RECORD`;

// Run as a script (not imported as a module)?
const main = process.argv[1] && fs.realpathSync(process.argv[1]);
if (main === decodeURIComponent(new URL(import.meta.url).pathname)) {
  const args = process.argv.slice(2);
  if (args.length === 4 && args[0] === "--race") {
    race(...args.slice(1));
  } else if (args.length === 1 || args.length === 2) {
    blogExample(...args);
  } else {
    console.error(USAGE);
    process.exit(2);
  }
}
