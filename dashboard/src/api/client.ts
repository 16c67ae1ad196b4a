// The dashboard's only way to the hub: typed calls of /api/v1, with types
// generated from the hub's OpenAPI document (schema.d.ts, `npm run gen:api`).
// Sessions are the HttpOnly cookie; every write carries the CSRF token.
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
type Method = "get" | "post" | "put" | "patch" | "delete";

/** Paths (relative to /api/v1) that answer `M`. */
export type PathWith<M extends Method> = {
  [P in keyof paths]: paths[P] extends { [K in M]: object } ? (P extends `/api/v1${infer R}` ? R : never) : never;
}[keyof paths];

type Op<P extends string, M extends Method> = `/api/v1${P}` extends keyof paths
  ? paths[`/api/v1${P}`] extends { [K in M]: infer O }
    ? O
    : never
  : never;

type JsonOf<R> = R extends { content: { "application/json": infer B } } ? B : void;

/** The body of a successful answer of `M P`. */
export type Answer<P extends string, M extends Method> =
  Op<P, M> extends { responses: infer Rs }
    ? 200 extends keyof Rs
      ? JsonOf<Rs[200]>
      : 201 extends keyof Rs
        ? JsonOf<Rs[201]>
        : void
    : never;

/** The JSON body `M P` takes. */
export type RequestBody<P extends string, M extends Method> =
  Op<P, M> extends { requestBody: { content: { "application/json": infer B } } }
    ? B
    : Op<P, M> extends { requestBody?: { content: { "application/json": infer B } } }
      ? B
      : undefined;

/** Query parameters of `M P`. */
export type QueryOf<P extends string, M extends Method> =
  Op<P, M> extends { parameters: { query?: infer Q } } ? (Q extends undefined ? never : Q) : never;

/** An error answer of the API, or the hub out of reach (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | undefined;
let onUnauthorized: (() => void) | undefined;

/** The CSRF token of the session, sent on every write. */
export function setCsrf(token: string | undefined): void {
  csrf = token;
}

/** Called when an answer says the session has ended. */
export function setUnauthorizedHandler(f: (() => void) | undefined): void {
  onUnauthorized = f;
}

/** `/api/v1{path}` with `{name}` segments filled in and `query` appended. */
export function url(path: string, params?: Record<string, string>, query?: object): string {
  let p = path.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(params?.[k] ?? ""));
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    }
    const s = q.toString();
    if (s) p += `?${s}`;
  }
  return `/api/v1${p}`;
}

async function send(method: string, path: string, params?: Record<string, string>, query?: object, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  let r: Response;
  try {
    r = await fetch(url(path, params, query), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The hub could not be reached.");
  }
  const text = await r.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
  }
  if (!r.ok) {
    const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (r.status === 401 && onUnauthorized && !path.startsWith("/auth/login")) onUnauthorized();
    throw new ApiError(r.status, e?.code ?? "http_" + r.status, e?.message ?? `The hub answered ${r.status}.`);
  }
  return json;
}

interface Opts<Q> {
  params?: Record<string, string>;
  query?: Q;
}

export const api = {
  get<P extends PathWith<"get">>(path: P, opts: Opts<QueryOf<P, "get">> = {}): Promise<Answer<P, "get">> {
    return send("GET", path, opts.params, opts.query as object | undefined) as Promise<Answer<P, "get">>;
  },
  post<P extends PathWith<"post">>(path: P, body: RequestBody<P, "post">, opts: Opts<never> = {}): Promise<Answer<P, "post">> {
    return send("POST", path, opts.params, undefined, body ?? undefined) as Promise<Answer<P, "post">>;
  },
  put<P extends PathWith<"put">>(path: P, body: RequestBody<P, "put">, opts: Opts<never> = {}): Promise<Answer<P, "put">> {
    return send("PUT", path, opts.params, undefined, body) as Promise<Answer<P, "put">>;
  },
  patch<P extends PathWith<"patch">>(path: P, body: RequestBody<P, "patch">, opts: Opts<never> = {}): Promise<Answer<P, "patch">> {
    return send("PATCH", path, opts.params, undefined, body) as Promise<Answer<P, "patch">>;
  },
  del<P extends PathWith<"delete">>(path: P, opts: Opts<never> = {}): Promise<Answer<P, "delete">> {
    return send("DELETE", path, opts.params) as Promise<Answer<P, "delete">>;
  },
};
