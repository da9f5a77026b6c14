/// <reference types="node" />

/** The expiry time of an entry that never expires (2106-02-07). */
export declare const NEVER: number;

/** How values become the bytes of an entry (`In`) and back (`T`). */
export interface Serializer<T = unknown, In = T> {
  serialize(value: In): string | Uint8Array;
  deserialize(data: Buffer): T;
}

/** Values as they are: a string is stored as UTF-8; reads give a Buffer. */
export declare const raw: Serializer<Buffer, string | Uint8Array>;
/** JSON, which other programs reading keys/<key> can parse too. */
export declare const json: Serializer<any, unknown>;

export interface CacheOptions<T, In> {
  /** The daemon's read-only fast view (--read-mount): hits are read there. */
  readMount?: string | null;
  /** Default: `raw`. */
  serializer?: Serializer<T, In>;
}

export interface SetOptions {
  /** Whole seconds to live; null, undefined or 0: never. */
  expire?: number | null;
  /** Tag names: no comma, blank, "/" or NUL; 1 to 125 bytes each. */
  tags?: Iterable<string>;
}

export interface ComputeOptions extends SetOptions {
  /** Seconds to wait for another process's compute (default 30). */
  wait?: number;
}

/** Where a value came from. */
export type Source = "hit" | "computed" | "stale" | "waited" | "fallback";

export interface Lookup<T> {
  value: T;
  source: Source;
}

/** What a wrapped content function receives. */
export declare class CacheParam {
  constructor(expire: number | null, tags: Set<string>);
  /** What the result is cached for, in seconds (null or 0: never). */
  expire: number | null;
  /** What the result is cached with. */
  tags: Set<string>;
  disabled: boolean;
  /** Return the result without caching it. */
  disable(): void;
}

/** A wrapped content function: resolves to the cached value or its own. */
export interface Wrapped<T> {
  (): Promise<T>;
  lookup(): Promise<Lookup<T>>;
}

/** A tagcachefs mount. Keys are strings of 1 to 125 bytes without "/" or
 * NUL, not "." or ".."; written keys do not start with "expire=" or "tags=". */
export declare class Cache<T = Buffer, In = string | Uint8Array> {
  /** Throws if `mountpoint` (or `readMount`) is not a tagcachefs mount. */
  constructor(mountpoint: string, options?: CacheOptions<T, In>);
  readonly mountpoint: string;
  readonly readMount: string | null;

  /** The value of `key`, or undefined if it is not live. */
  get(key: string): Promise<T | undefined>;
  /** Whether `key` is live. */
  has(key: string): Promise<boolean>;
  /** Stores `value`; content, tags and expiry replace the entry's together.
   * Rejects with the commit's error (ENOSPC, EIO, ESTALE). */
  set(key: string, value: In, options?: SetOptions): Promise<void>;
  /** Invalidates `key`; false if it was not live. */
  delete(key: string): Promise<boolean>;
  invalidateKey(key: string): Promise<boolean>;
  /** Invalidates every entry carrying `tag`; false if there was none. */
  invalidateTag(tag: string): Promise<boolean>;
  /** The daemon's counters (.stats). */
  stats(): Promise<Record<string, unknown>>;

  /** The value of `key`, or compute()'s, computed once across processes
   * (the mount's single-flight lock). */
  getOrCompute(key: string, compute: () => In | Promise<In>, options?: ComputeOptions): Promise<T>;
  /** getOrCompute(), saying where the value came from. */
  lookup(key: string, compute: () => In | Promise<In>, options?: ComputeOptions): Promise<Lookup<T>>;
  /** The tagcache library's decorator. */
  wrap(
    key: string,
    contentFn: (param: CacheParam) => In | Promise<In>,
    options?: ComputeOptions,
  ): Wrapped<T>;
}
