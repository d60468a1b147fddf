import { DatabaseSync } from 'node:sqlite';

/**
 * Opens an emulator's SQLite database (node:sqlite): WAL, `synchronous = NORMAL` — a commit survives the
 * process being killed, not a power cut, which is the promise the emulators make — and the schema
 * created at the first open (`user_version` 0), refused when the file was made by another version.
 */
export function openDatabase(file: string, schema: string, version: number): DatabaseSync {
  const db = new DatabaseSync(file, { timeout: 5_000 });
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
  const { user_version: found } = db.prepare('PRAGMA user_version').get() as { user_version: number };
  if (found === 0) {
    transaction(db, () => db.exec(`${schema} PRAGMA user_version = ${version};`));
  } else if (found !== version) {
    db.close();
    throw new Error(`${file} has schema version ${found}; this emulator knows ${version}`);
  }
  return db;
}

/**
 * Runs `work` in one write transaction, committed before this returns. `work` is synchronous, so no
 * other request's statements interleave with it.
 */
export function transaction<T>(db: DatabaseSync, work: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = work();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
