import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The hub serves the build (gateway-server/src/web) under a strict CSP:
// no inline scripts or styles, so nothing here may inline them.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    target: "es2022",
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a hub on the default port.
    proxy: { "/api": "http://127.0.0.1:3200" },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
