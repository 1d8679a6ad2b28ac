import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * The browser app, built into client/web/dist and served by the hub at `/` (assets under
 * `/assets/`, every other unknown GET path answered with index.html so that client routes such as
 * /salle/consultation/<id> survive a reload).
 *
 * `npm run dev:web` serves it with hot reload and forwards the hub's routes to HUB_URL
 * (default http://localhost:8080, where `npm start` listens).
 */
const hub = process.env.HUB_URL ?? 'http://localhost:8080';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: true,
    target: 'es2022',
  },
  server: {
    port: 5173,
    // The app imports the signaling types from server/rooms/protocol.ts, outside this folder.
    fs: { allow: [fileURLToPath(new URL('../..', import.meta.url))] },
    // The Host header is kept (no changeOrigin): the hub accepts a socket.io handshake whose Origin
    // matches the Host it sees, so the dev server's origin needs no CORS_ORIGINS entry.
    proxy: {
      '/api': { target: hub },
      '/fhir': { target: hub },
      '/socket.io': { target: hub, ws: true },
    },
  },
});
