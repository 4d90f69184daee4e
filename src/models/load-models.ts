import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readYamlFile } from '../config/yaml-file.js';
import { zodIssuesToConfigIssues } from '../config/zod-issues.js';
import type { ConfigIssue } from '../errors.js';
import { type Model, modelMetaSchema } from './model.js';

/** Strips a trailing semicolon (the SQL is wrapped as a subquery) and surrounding blank space. */
export function cleanModelSql(sql: string): string {
  return sql.trim().replace(/;\s*$/, '').trim();
}

/**
 * Discovers `models/<name>.sql` + `models/<name>.yml` pairs. Every problem becomes an issue; models
 * that have problems are left out of the result.
 */
export async function loadModels(projectDir: string, issues: ConfigIssue[]): Promise<Map<string, Model>> {
  const models = new Map<string, Model>();
  const dir = join(projectDir, 'models');
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return models;
    throw error;
  }
  const stems = new Set<string>();
  for (const entry of entries) {
    const match = /^(.+)\.(sql|yml|yaml)$/.exec(entry);
    if (match) stems.add(match[1]!);
  }
  for (const stem of [...stems].sort()) {
    const sqlFile = `models/${stem}.sql`;
    const ymlName = entries.includes(`${stem}.yml`)
      ? `${stem}.yml`
      : entries.includes(`${stem}.yaml`)
        ? `${stem}.yaml`
        : undefined;
    const ymlFile = `models/${ymlName ?? `${stem}.yml`}`;
    const before = issues.length;
    if (!entries.includes(`${stem}.sql`)) {
      issues.push({
        file: sqlFile,
        path: '',
        message: `model SQL file is missing (${ymlFile} has no ${stem}.sql beside it)`,
      });
    }
    if (!ymlName) {
      issues.push({
        file: ymlFile,
        path: '',
        message: `model file is missing (name, description, primary_key for ${sqlFile})`,
      });
    }
    let sql = '';
    if (entries.includes(`${stem}.sql`)) {
      sql = cleanModelSql(await readFile(join(dir, `${stem}.sql`), 'utf8'));
      if (sql === '')
        issues.push({ file: sqlFile, path: '', message: 'model SQL is empty (write one SELECT)' });
    }
    let meta: { name: string; description: string; primary_key: string } | undefined;
    if (ymlName) {
      const yaml = await readYamlFile(join(dir, ymlName), ymlFile, issues);
      if (yaml) {
        const parsed = modelMetaSchema.safeParse(yaml.value ?? {});
        if (parsed.success) {
          meta = parsed.data;
          if (meta.name !== stem) {
            issues.push({
              file: ymlFile,
              path: 'name',
              message: `name "${meta.name}" differs from the file name "${stem}"`,
              ...yaml.locate(['name']),
            });
          }
        } else {
          issues.push(...zodIssuesToConfigIssues(parsed.error, yaml));
        }
      }
    }
    if (issues.length === before && meta) {
      models.set(stem, {
        name: stem,
        description: meta.description,
        primaryKey: meta.primary_key,
        sql,
        sqlPath: join(dir, `${stem}.sql`),
        ymlPath: join(dir, ymlName!),
      });
    }
  }
  return models;
}
