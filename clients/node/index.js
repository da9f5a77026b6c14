// tagcachefs for Node: the tagcache library's API over a tagcachefs mount.
//
// A mount point holds keys/<name> (the live entries), tags/<tag>/,
// stale/<name> (expired or invalidated content, until cleanup), put/ and
// .stats. Everything here is a plain file operation on those:
//
// - a hit is a read of keys/<key>, on the read-only fast view when one is
//   given (the kernel serves it without asking the daemon);
// - a write opens put/expire=S/tags=a,b/<key>, which is exactly a write of
//   keys/<key> with that TTL and those tags set before any data (Node has
//   no xattr call, and needs none); close() is the commit and throws the
//   commit's error;
// - a miss takes the key's single-flight lock by opening that path with
//   O_CREAT|O_EXCL (the same lock on every mount of the store): one process
//   computes; the others serve stale/<key> if it is there, or wait for the
//   value with a bounded back-off.
//
// Reads are asynchronous. The write path (open, write, close) is
// synchronous on purpose: the mount commits an empty value at the close of
// the thread that opened the descriptor (FUSE reports thread ids), and the
// promise API would run open and close on any two threads of libuv's pool.
// Only compute() runs in between, asynchronously; what it spawns inherits
// nothing (libuv opens everything close-on-exec) and a child's close of a
// descriptor that has written nothing commits nothing.

import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The expiry time of an entry that never expires (2106-02-07). */
export const NEVER = 2 ** 32;
const MAX_NAME = 125;
const MAX_COMPONENT = 255;
/** The wait for another process's compute polls from 5 ms, doubling, to 250 ms. */
const FIRST_DELAY_MS = 5;
const MAX_DELAY_MS = 250;
/** A small hit is one read; big values continue in larger steps. */
const FIRST_READ = 64 << 10;
const READ = 1 << 20;
const BLANKS = /[ \t\n\f\r,]/;
const { O_CREAT, O_EXCL, O_TRUNC, O_WRONLY } = fs.constants;

/** A string or bytes as a Buffer (no copy). */
function toBuffer(value) {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "string") return Buffer.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(
    `without a serializer a value is a string or bytes, not ${value === null ? "null" : typeof value}` +
      " (pass { serializer: json } to the Cache)",
  );
}

/** Values as they are: bytes (a string is stored as UTF-8, read back as a Buffer). */
export const raw = Object.freeze({
  serialize: (value) => toBuffer(value),
  deserialize: (data) => data,
});

/** JSON: what other programs reading keys/<key> can parse too. */
export const json = Object.freeze({
  serialize: (value) => {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`not a JSON value: ${typeof value}`);
    return text;
  },
  deserialize: (data) => JSON.parse(data.toString("utf8")),
});

function checkName(name, what) {
  if (typeof name !== "string") throw new TypeError(`a ${what} is a string, not ${typeof name}`);
  const shown = JSON.stringify(name);
  if (name === "" || name === "." || name === "..") {
    throw new TypeError(`not a ${what}: ${shown} (empty, . or ..)`);
  }
  if (name.includes("/") || name.includes("\0")) throw new TypeError(`not a ${what}: ${shown} (holds / or NUL)`);
  if (Buffer.byteLength(name) > MAX_NAME) throw new TypeError(`a ${what} is at most ${MAX_NAME} bytes: ${shown}`);
  return name;
}

function checkTag(tag) {
  checkName(tag, "tag");
  if (BLANKS.test(tag)) throw new TypeError(`a tag holds no comma or blank: ${JSON.stringify(tag)}`);
  return tag;
}

function checkTtl(expire) {
  if (expire === null || expire === undefined) return 0;
  if (typeof expire !== "number") throw new TypeError(`expire is seconds (a number), not ${typeof expire}`);
  if (!Number.isInteger(expire) || expire < 0 || expire > NEVER) {
    throw new RangeError(`expire is whole seconds, 0 (never) to 2^32: ${expire}`);
  }
  return expire;
}

/** What a write of `key` carries, checked: its put/ path components. */
function params(key, expire, tags) {
  checkName(key, "key");
  if (key.startsWith("expire=") || key.startsWith("tags=")) {
    throw new TypeError(`put/ cannot write a key starting with expire= or tags=: ${JSON.stringify(key)}`);
  }
  if (typeof tags === "string") throw new TypeError(`tags is a collection of tags, not one string: ${tags}`);
  const list = [...new Set([...(tags ?? [])].map(checkTag))].sort();
  const tagDir = `tags=${list.join(",")}`;
  if (Buffer.byteLength(tagDir) > MAX_COMPONENT) {
    throw new RangeError(`the tags of one entry are at most ${MAX_COMPONENT - 5} bytes joined by commas`);
  }
  const ttl = checkTtl(expire);
  return { key, ttl, tagDir, same: (o) => o.ttl === ttl && o.tagDir === tagDir };
}

/** The content of `file` (a Buffer), or null if there is no such file. A
 * short read is the end: the daemon answers every read with all the bytes
 * asked for up to the version's end. */
async function readOrNull(file) {
  let fh;
  try {
    fh = await fsp.open(file, "r");
  } catch (e) {
    if (e.code === "ENOENT") return null;
    throw e;
  }
  try {
    const parts = [];
    for (let size = FIRST_READ; ; size = READ) {
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await fh.read(buf, 0, size, null);
      parts.push(bytesRead < size ? Buffer.from(buf.subarray(0, bytesRead)) : buf);
      if (bytesRead < size) return parts.length === 1 ? parts[0] : Buffer.concat(parts);
    }
  } finally {
    await fh.close();
  }
}

/** Writes `data` into the version open on `fd` and closes it: the close is
 * the commit, and throws its error. */
function commit(fd, data, ttl) {
  try {
    if (data.length === 0) {
      // Nothing will be written: a change that makes the close commit (the
      // expiry put/ gives, as the descriptor's mtime).
      const expiry = ttl === 0 ? NEVER : Math.floor(Date.now() / 1000) + ttl;
      fs.futimesSync(fd, expiry, expiry);
    }
    for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off, data.length - off);
  } catch (e) {
    try {
      fs.closeSync(fd); // a failed write fails the commit too
    } catch {
      // the write's error is the one to report
    }
    throw e;
  }
  fs.closeSync(fd);
}

/** The parameter a wrapped content function receives: changing `tags` (a
 * Set) or `expire` changes what the result is cached with; `disable()`
 * returns the result without caching it. */
export class CacheParam {
  constructor(expire, tags) {
    this.expire = expire;
    this.tags = tags;
    this.disabled = false;
  }

  disable() {
    this.disabled = true;
  }
}

/** A tagcachefs mount. */
export class Cache {
  #mnt;
  #hits;
  #serializer;

  /**
   * @param mountpoint the mount point (keys/, put/, tags/, stale/ in it)
   * @param options.readMount the daemon's read-only fast view (--read-mount):
   *   hits are read there; locks, writes and invalidations go through
   *   `mountpoint`
   * @param options.serializer how values become bytes (default: `raw`)
   */
  constructor(mountpoint, { readMount = null, serializer = raw } = {}) {
    if (typeof mountpoint !== "string" || mountpoint === "") throw new TypeError("a mount point is a path");
    this.#mnt = path.resolve(mountpoint);
    this.#hits = readMount ? path.resolve(readMount) : this.#mnt;
    this.#serializer = serializer;
    for (const [dir, sub] of [[this.#mnt, "keys"], [this.#mnt, "put"], [this.#hits, "keys"]]) {
      let isDir = false;
      try {
        isDir = fs.statSync(path.join(dir, sub)).isDirectory();
      } catch {
        // reported below
      }
      if (!isDir) throw new Error(`${dir} is not a tagcachefs mount (no ${sub}/ in it)`);
    }
  }

  get mountpoint() {
    return this.#mnt;
  }

  get readMount() {
    return this.#hits === this.#mnt ? null : this.#hits;
  }

  /** The value of `key`, or undefined if it is not live. */
  async get(key) {
    const data = await readOrNull(path.join(this.#hits, "keys", checkName(key, "key")));
    return data === null ? undefined : this.#serializer.deserialize(data);
  }

  /** Whether `key` is live. */
  async has(key) {
    try {
      await (await fsp.open(path.join(this.#hits, "keys", checkName(key, "key")), "r")).close();
    } catch (e) {
      if (e.code === "ENOENT") return false;
      throw e;
    }
    return true;
  }

  /** Stores `value` as `key` with `tags`, expiring in `expire` seconds
   * (null or 0: never); replaces content, tags and expiry together. Visible
   * to every reader once the promise resolves; rejects with the commit's
   * error (ENOSPC, EIO, ESTALE). */
  async set(key, value, { expire = null, tags = [] } = {}) {
    const p = params(key, expire, tags);
    const data = toBuffer(this.#serializer.serialize(value));
    commit(fs.openSync(this.#put(p), O_WRONLY | O_CREAT | O_TRUNC, 0o644), data, p.ttl);
  }

  /** Removes `key` (invalidates it; its content stays under stale/ until
   * cleanup). False if it was not live. */
  async delete(key) {
    return this.invalidateKey(key);
  }

  /** Invalidates one entry (rm keys/<key>). False if it was not live. */
  async invalidateKey(key) {
    try {
      await fsp.unlink(path.join(this.#mnt, "keys", checkName(key, "key")));
    } catch (e) {
      if (e.code === "ENOENT") return false;
      throw e;
    }
    return true;
  }

  /** Invalidates every entry carrying `tag` (rmdir tags/<tag>). False if
   * there was no such tag. */
  async invalidateTag(tag) {
    try {
      await fsp.rmdir(path.join(this.#mnt, "tags", checkTag(tag)));
    } catch (e) {
      if (e.code === "ENOENT") return false;
      throw e;
    }
    return true;
  }

  /** The daemon's counters (.stats): hits, misses, commits, store… */
  async stats() {
    const data = await readOrNull(path.join(this.#mnt, ".stats"));
    if (data === null) throw new Error(`${this.#mnt}/.stats: no such file`);
    return JSON.parse(data.toString("utf8"));
  }

  /** The value of `key`, or `await compute()`'s, cached with `tags` and
   * `expire`: see lookup(). */
  async getOrCompute(key, compute, options = {}) {
    return (await this.lookup(key, compute, options)).value;
  }

  /**
   * getOrCompute() that also says where the value came from: resolves to
   * { value, source } with source "hit", "computed", "stale" (another
   * process holds the lock: the last content, from stale/), "waited"
   * (another process computed it while this one polled) or "fallback" (the
   * wait ran out: computed here without the lock).
   *
   * On a miss this process takes the key's single-flight lock and computes;
   * if compute() throws, nothing is cached and the lock is free for the next
   * one. If another process holds the lock, this one serves stale/<key> when
   * it is there, else polls for the value (5 ms, doubling to 250 ms) for at
   * most `wait` seconds (default 30), then computes it itself and stores it
   * without the lock (the last commit wins). Choose `wait` above your
   * slowest compute.
   */
  async lookup(key, compute, { expire = null, tags = [], wait = 30 } = {}) {
    const p = params(key, expire, tags);
    return this.#lookup(p, wait, async () => ({ value: await compute(), store: p }));
  }

  /**
   * The tagcache library's decorator: returns an async function that
   * resolves to the cached value of `key`, or to `await contentFn(param)`,
   * computed under the key's single-flight lock and cached with the tags
   * and expiry `param` (a CacheParam) ends with; `param.disable()` returns
   * the result uncached. The function's `lookup()` also says where the
   * value came from.
   */
  wrap(key, contentFn, { expire = null, tags = [], wait = 30 } = {}) {
    if (typeof contentFn !== "function") throw new TypeError("a content function is a function");
    const p = params(key, expire, tags);
    const initial = [...new Set(tags)];
    const produce = async () => {
      const param = new CacheParam(expire, new Set(initial));
      const value = await contentFn(param);
      return { value, store: param.disabled ? null : params(key, param.expire, param.tags) };
    };
    const lookup = () => this.#lookup(p, wait, produce);
    const wrapped = async () => (await lookup()).value;
    wrapped.lookup = lookup;
    return wrapped;
  }

  #put(p) {
    return path.join(this.#mnt, "put", `expire=${p.ttl}`, p.tagDir, p.key);
  }

  /** A computed value as a hit returns it: without a serializer, the
   * bytes stored. */
  #asRead(value, data) {
    return this.#serializer === raw ? data : value;
  }

  async #stale(key) {
    const data = await readOrNull(path.join(this.#mnt, "stale", key));
    if (data === null) return null;
    try {
      return { value: this.#serializer.deserialize(data) };
    } catch {
      return null; // only an optimisation: content that does not load is not served
    }
  }

  /** Get-or-compute. `produce()` resolves to { value, store }: the params
   * to store the value with (a wrapped function can change them), or null
   * not to store it; `p` are those known before it runs. */
  async #lookup(p, wait, produce) {
    const hit = path.join(this.#hits, "keys", p.key);
    let deadline = null;
    let delay = FIRST_DELAY_MS;
    for (;;) {
      const data = await readOrNull(hit);
      if (data !== null) {
        return { value: this.#serializer.deserialize(data), source: deadline === null ? "hit" : "waited" };
      }
      let fd = null;
      try {
        fd = fs.openSync(this.#put(p), O_WRONLY | O_CREAT | O_EXCL, 0o644);
      } catch (e) {
        if (e.code !== "EEXIST") throw e;
      }
      if (fd !== null) {
        let made, bytes;
        try {
          made = await produce();
          if (made.store) bytes = toBuffer(this.#serializer.serialize(made.value));
        } catch (e) {
          fs.closeSync(fd); // nothing written: nothing committed, lock released
          throw e;
        }
        if (!made.store) {
          fs.closeSync(fd);
          return { value: made.value, source: "computed" };
        }
        if (made.store.same(p)) {
          commit(fd, bytes, p.ttl);
        } else {
          // Tags or expiry changed while computing: put/ took them at the
          // open. Write through a second open with the new ones (the lock
          // does not bind plain writers), then give the lock up.
          try {
            commit(fs.openSync(this.#put(made.store), O_WRONLY | O_CREAT | O_TRUNC, 0o644), bytes, made.store.ttl);
          } finally {
            fs.closeSync(fd);
          }
        }
        return { value: this.#asRead(made.value, bytes), source: "computed" };
      }
      // Another process holds the lock, or committed just now.
      if (deadline === null) {
        const again = await readOrNull(hit);
        if (again !== null) return { value: this.#serializer.deserialize(again), source: "hit" };
        const stale = await this.#stale(p.key);
        if (stale !== null) return { value: stale.value, source: "stale" };
        deadline = performance.now() + wait * 1000;
      }
      const left = deadline - performance.now();
      if (left <= 0) break;
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
    const made = await produce();
    if (!made.store) return { value: made.value, source: "fallback" };
    const bytes = toBuffer(this.#serializer.serialize(made.value));
    commit(fs.openSync(this.#put(made.store), O_WRONLY | O_CREAT | O_TRUNC, 0o644), bytes, made.store.ttl);
    return { value: this.#asRead(made.value, bytes), source: "fallback" };
  }
}
