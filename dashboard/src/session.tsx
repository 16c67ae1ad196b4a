// Who is signed in, with which permissions, and the hub's URLs.
import { createContext, useContext } from "react";
import type { Schemas } from "./api/client";

export type Permission = Schemas["Permission"];

export interface Session {
  me: Schemas["Me"];
  info: Schemas["HubInfo"];
  can: (p: Permission) => boolean;
  signOut: () => void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in page");
  return s;
}
