import { describe, expect, it } from 'vitest';
import { postgresConfigSchema, postgresUrlProblem } from '../../src/sources/postgres/postgres-config.js';

describe('warehouse.url of a Postgres warehouse', () => {
  it.each([
    'postgres://postgres@127.0.0.1:5432/test',
    'postgresql://user:p%40ss@db.internal/analytics?sslmode=require',
    'POSTGRES://user@host/db',
    'postgres://user@/db',
    'postgres:///db',
    'postgres://user:with space@host/db',
    '/var/run/postgresql',
    'socket:/var/run/postgresql?db=analytics',
  ])('accepts %s', (url) => {
    expect(postgresUrlProblem(url)).toBeUndefined();
  });

  it.each([
    [
      'postgress://u:secret-pw@h/db',
      /^unknown scheme "postgress:\/\/" \(use postgres:\/\/ or postgresql:\/\//,
    ],
    ['mysql://u:secret-pw@h/db', /^unknown scheme "mysql:\/\/"/],
    ['http://h/db', /^unknown scheme "http:\/\/"/],
    ['postgres://u:secret-pw@h:port/db', /^is not a valid connection URL/],
    ['postgres://u:secret#pw@h/db', /^is not a valid connection URL/],
    ['postgres://h:99999/db', /^is not a valid connection URL/],
    ['localhost:5432/db', /^must be a connection URL such as postgres:\/\//],
    ['db.internal', /^must be a connection URL/],
  ])('refuses %s without quoting it', (url, message) => {
    const problem = postgresUrlProblem(url);
    expect(problem).toMatch(message);
    expect(problem).not.toContain('secret');
  });

  it('is checked by the schema', () => {
    const result = postgresConfigSchema.safeParse({ type: 'postgres', url: 'postgress://h/db' });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]).toMatchObject({ path: ['url'], code: 'custom' });
  });
});
