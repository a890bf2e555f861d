/*
 * Settings: the server's few singletons (schema version, signing key, admin token hash), one row per
 * key. `setSettingIfAbsent` lets several instances starting at once on one PostgreSQL agree on the
 * first value written.
 */
import type { Db } from '../db.js';

export interface SettingsStore {
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
  /** Insert unless present; returns the value that is stored (ours or the one already there). */
  setSettingIfAbsent(key: string, value: string): Promise<string>;
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
  };
}
