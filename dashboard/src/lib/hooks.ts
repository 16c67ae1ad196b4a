import { useCallback, useEffect, useRef, useState } from "react";
import { navigate, useLocation } from "./router";
import { parseFilters, toSearch, type FilterSpec } from "./query";

/** A value loaded from the API: loading, then data or an error; `reload` fetches again. */
export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
  set: (f: (d: T | undefined) => T | undefined) => void;
}

export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const latest = useRef(0);
  useEffect(() => {
    const id = ++latest.current;
    setLoading(true);
    load().then(
      (d) => {
        if (id !== latest.current) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: Error) => {
        if (id !== latest.current) return;
        setError(e);
        setLoading(false);
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const set = useCallback((f: (d: T | undefined) => T | undefined) => setData((d) => f(d)), []);
  return { data, error, loading, reload, set };
}

/** Filters in the URL's query string: changing them replaces the URL (shareable, no history spam). */
export function useFilters<K extends string>(spec: FilterSpec<K>): [Record<K, string>, (f: Partial<Record<K, string>>) => void] {
  const { path, search } = useLocation();
  const filters = parseFilters(search, spec);
  const set = (f: Partial<Record<K, string>>) => navigate(path + toSearch({ ...filters, ...f }, spec), { replace: true });
  return [filters, set];
}

/** `value`, settled for `ms` (for search boxes). */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
