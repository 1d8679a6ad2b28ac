/**
 * The app's few pages, as paths the hub answers with index.html (so a reload or a shared link
 * lands on the same page).
 */
import { useSyncExternalStore } from 'react';
import type { RoomTarget } from './rooms/call.js';

export type Route = { page: 'login' } | { page: 'home' } | { page: 'room'; target: RoomTarget } | { page: 'not-found' };

export const paths = {
  login: '/connexion',
  home: '/',
  room: (target: RoomTarget) => `/salle/${target.type === 'appointment' ? 'consultation' : 'assistance'}/${encodeURIComponent(target.id)}`,
};

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '') return { page: 'home' };
  if (pathname === paths.login) return { page: 'login' };
  const room = /^\/salle\/(consultation|assistance)\/([A-Za-z0-9\-.]{1,64})\/?$/.exec(pathname);
  if (room) return { page: 'room', target: { type: room[1] === 'consultation' ? 'appointment' : 'serviceRequest', id: decodeURIComponent(room[2]!) } };
  return { page: 'not-found' };
}

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => {
  for (const listener of listeners) listener();
});

export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  for (const listener of listeners) listener();
}

export function usePathname(): string {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => location.pathname,
  );
}
