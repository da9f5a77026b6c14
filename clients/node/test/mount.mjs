// What the tests share: the mount they run against, and looking at it from
// outside the package.
//
// TAGCACHEFS_MNT (required): a tagcachefs mount point. TAGCACHEFS_FAST
// (optional): its read-only fast view. Without TAGCACHEFS_MNT every test
// file fails: these tests are never skipped.

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export const MNT = process.env.TAGCACHEFS_MNT;
export const FAST = process.env.TAGCACHEFS_FAST || null;
if (!MNT || !fs.existsSync(path.join(MNT, "keys"))) {
  throw new Error(
    `TAGCACHEFS_MNT must name a tagcachefs mount point (got ${JSON.stringify(MNT)}); ` +
      "mount one: tagcachefs STORE MNT [--read-mount FAST]",
  );
}

/** A key (or tag) no other test uses. */
export function unique(t) {
  return `${t.name.replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 80)}-${randomBytes(4).toString("hex")}`;
}

export const keys = (key) => path.join(MNT, "keys", key);
export const stale = (key) => path.join(MNT, "stale", key);

/** The content of `file`, or null. */
export function read(file) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if (e.code === "ENOENT") return null;
    throw e;
  }
}

/** The names in tags/<tag>/ (none if there is no such tag). */
export function tagged(tag) {
  try {
    return fs.readdirSync(path.join(MNT, "tags", tag)).sort();
  } catch (e) {
    if (e.code === "ENOENT") return [];
    throw e;
  }
}

/** Seconds until `key` expires (its mtime is its expiry). */
export function secondsLeft(key) {
  return fs.statSync(keys(key)).mtimeMs / 1000 - Date.now() / 1000;
}

/** Takes `key`'s single-flight lock, as another computing process would. */
export function holdLock(key) {
  const { O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
  return fs.openSync(path.join(MNT, "put", key), O_WRONLY | O_CREAT | O_EXCL, 0o644);
}
