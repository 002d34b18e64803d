import type { Database } from 'better-sqlite3';

/** Process-wide switches that survive restarts. */
export function createSettings(db: Database) {
  const get = db.prepare('SELECT value FROM settings WHERE key = ?');
  const put = db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  return {
    /** Whether building is paused (/pause); @default false */
    paused(): boolean {
      return (get.get('paused') as { value: string } | undefined)?.value === 'true';
    },
    setPaused(paused: boolean): void {
      put.run('paused', String(paused));
    },
  };
}

/** The settings part of the store. */
export type Settings = ReturnType<typeof createSettings>;
