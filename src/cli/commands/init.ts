import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { withExamples, withGlobalOptions } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { Wrap } from './index.js';

/** The README section a new tailor.yml links to (test/unit/docs-citations.test.ts checks it resolves). */
export const CONFIGURATION_URL = 'https://github.com/tailor-sync/tailor#configuration';

const TAILOR_YML = `# Tailor project: see ${CONFIGURATION_URL}
warehouse:
  type: postgres
  url: \${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
state_schema: tailor

# \`tailor connect\` signs in to X, lets you choose the ad account and writes the destination here,
# with its default activation settings; the tokens go into .env (git-ignored), never into this file.
destinations: {}

# Add activations with \`tailor activate <model>\`, or by hand:
activations: {}
`;

const MODEL_SQL = `-- One SELECT returning one row per member. Tailor wraps it as a subquery; it is never rewritten.
select customer_id, email, phone
from customers
where lifetime_value > 1000
`;

const MODEL_YML = `name: high_value_customers
description: Customers whose lifetime value is over $1,000
primary_key: customer_id
`;

export function defineInit(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('init [dir]')), [
    'tailor init                 # in the current directory',
    'tailor init my-audiences    # in a new directory',
  ])
    .description('scaffold a project: tailor.yml and an example model')
    .action(
      wrap(async (ctx, dir: string | undefined) => {
        // Never the project found above the current directory: init makes a new one where it is told.
        const target = resolve(ctx.baseDir, dir ?? '.');
        if (existsSync(join(target, 'tailor.yml'))) {
          throw new ConfigError([
            {
              file: join(target, 'tailor.yml'),
              path: '',
              message: 'already exists; init never overwrites a project',
            },
          ]);
        }
        await mkdir(join(target, 'models'), { recursive: true });
        await writeFile(join(target, 'tailor.yml'), TAILOR_YML, { flag: 'wx' });
        await writeFile(join(target, 'models', 'high_value_customers.sql'), MODEL_SQL, { flag: 'wx' });
        await writeFile(join(target, 'models', 'high_value_customers.yml'), MODEL_YML, { flag: 'wx' });
        const files = ['tailor.yml', 'models/high_value_customers.sql', 'models/high_value_customers.yml'];
        if (ctx.globals.json) ctx.printJson({ ok: true, dir: target, files });
        else
          ctx.print(
            `created ${files.join(', ')} in ${target}\n` +
              'next: `tailor connect` (sign in to X, choose the ad account), then `tailor activate high_value_customers`',
          );
        return EXIT.ok;
      }),
    );
}
