import type { Database } from 'better-sqlite3';

/** Who holds the data directory. */
export interface LockHolder {
  readonly owner: string;
  readonly pid: number;
  readonly heartbeatAt: number;
}

/**
 * One running nightshift per data directory. The holder renews a heartbeat; a holder whose
 * heartbeat is older than `staleMs` (it was killed) is replaced. Acquiring is one immediate
 * transaction, so of two processes started at once exactly one wins.
 */
export function createProcessLock(db: Database, now: () => number) {
  const read = db.prepare('SELECT owner, pid, heartbeat_at AS heartbeatAt FROM process_lock WHERE id = 1');
  const put = db.prepare(
    `INSERT INTO process_lock (id, owner, pid, heartbeat_at) VALUES (1, @owner, @pid, @at)
     ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at`,
  );
  const beat = db.prepare('UPDATE process_lock SET heartbeat_at = ? WHERE id = 1 AND owner = ?');
  const drop = db.prepare('DELETE FROM process_lock WHERE id = 1 AND owner = ?');
  return {
    /** Takes the lock for `owner`; returns the live holder instead when another one has it. */
    acquire(
      owner: string,
      pid: number,
      staleMs: number,
      /** Whether the holder is known to be gone (its process no longer exists on this host). */
      isGone: (holder: LockHolder) => boolean = () => false,
    ): { acquired: true } | { acquired: false; holder: LockHolder } {
      return db.transaction(() => {
        const holder = read.get() as LockHolder | undefined;
        if (holder && holder.owner !== owner && now() - holder.heartbeatAt < staleMs && !isGone(holder)) return { acquired: false, holder } as const;
        put.run({ owner, pid, at: now() });
        return { acquired: true } as const;
      }).immediate();
    },
    /** Renews the heartbeat; false if the lock was taken over (this process must stop). */
    heartbeat(owner: string): boolean {
      return beat.run(now(), owner).changes === 1;
    },
    /** Gives the lock up (a clean stop), so the next start need not wait. */
    release(owner: string): void {
      drop.run(owner);
    },
  };
}

/** The process-lock part of the store. */
export type ProcessLock = ReturnType<typeof createProcessLock>;
