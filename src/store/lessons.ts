import type { Database } from 'better-sqlite3';
import { z } from 'zod';

/** What the human taught the bot by rejecting a PR. */
export interface Lesson {
  readonly id: number;
  readonly repo: string;
  readonly text: string;
  readonly itemId: number | null;
  readonly createdAt: number;
}

const lessonRow = z.object({ id: z.number(), repo: z.string(), text: z.string(), item_id: z.number().nullable(), created_at: z.number() });

function toLesson(row: unknown): Lesson {
  const r = lessonRow.parse(row);
  return { id: r.id, repo: r.repo, text: r.text, itemId: r.item_id, createdAt: r.created_at };
}

/** Lessons, per repo; deleting one keeps the row (soft delete) so history stays explainable. */
export function createLessons(db: Database, now: () => number) {
  const insert = db.prepare('INSERT INTO lessons (repo, text, item_id, created_by, created_at) VALUES (?, ?, ?, ?, ?)');
  const byId = db.prepare('SELECT * FROM lessons WHERE id = ? AND deleted_at IS NULL');
  const ofRepo = db.prepare('SELECT * FROM lessons WHERE repo = ? AND deleted_at IS NULL ORDER BY id');
  const all = db.prepare('SELECT * FROM lessons WHERE deleted_at IS NULL ORDER BY repo, id');
  const remove = db.prepare('UPDATE lessons SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL');
  return {
    add(lesson: { repo: string; text: string; itemId?: number; createdBy?: number }): Lesson {
      const { lastInsertRowid } = insert.run(lesson.repo, lesson.text, lesson.itemId ?? null, lesson.createdBy ?? null, now());
      return toLesson(byId.get(Number(lastInsertRowid)));
    },
    get(id: number): Lesson | undefined {
      const row = byId.get(id);
      return row === undefined ? undefined : toLesson(row);
    },
    /** The repo's lessons, oldest first; every repo's when `repo` is omitted. */
    list(repo?: string): Lesson[] {
      return (repo === undefined ? all.all() : ofRepo.all(repo)).map(toLesson);
    },
    /** Deletes a lesson; false if it was already gone. */
    remove(id: number): boolean {
      return remove.run(now(), id).changes === 1;
    },
  };
}

/** The lessons part of the store. */
export type Lessons = ReturnType<typeof createLessons>;
