/*
 * Settings: the server's few singletons (schema version, signing key, admin token hash), one row per
 * key. `setSettingIfAbsent` lets several instances starting at once on one PostgreSQL agree on the
 * first value written.
 */
import type { Db } from '../db.js';
import { type AuditEntry, insertAudit } from './audit.js';

export interface SettingsStore {
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
  /** Insert unless present; returns the value that is stored (ours or the one already there). */
  setSettingIfAbsent(key: string, value: string): Promise<string>;
  /** Set several at once, in one transaction (undefined deletes): a key rotation is all or nothing. */
  setSettings(values: Record<string, string | undefined>, audit?: AuditEntry): Promise<void>;
}

export function sqlSettings(db: Db): SettingsStore {
  return {
    async getSetting(key: string): Promise<string | undefined> {
      return (await db.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key]))?.value;
    },

    async setSetting(key: string, value: string): Promise<void> {
      await db.run(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
        [key, value],
      );
    },

    async setSettingIfAbsent(key: string, value: string): Promise<string> {
      await db.run('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING', [
        key,
        value,
      ]);
      return (
        (await db.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key]))?.value ?? value
      );
    },

    async setSettings(values: Record<string, string | undefined>, audit?: AuditEntry): Promise<void> {
      await db.tx(async (x) => {
        if (audit) await insertAudit(x, audit);
        for (const [key, value] of Object.entries(values)) {
          if (value === undefined) await x.run('DELETE FROM settings WHERE key = ?', [key]);
          else
            await x.run(
              'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
              [key, value],
            );
        }
      });
    },
  };
}
