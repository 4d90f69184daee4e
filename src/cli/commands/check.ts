import { relative } from 'node:path';
import type { Command } from 'commander';
import type { Project } from '../../config/load-project.js';
import { type ResolvedActivation, resolveActivations } from '../../config/resolve-activation.js';
import { createDestination } from '../../destinations/registry.js';
import {
  ConfigError,
  type ConfigIssue,
  errorMessage,
  formatConfigIssue,
  isTailorError,
} from '../../errors.js';
import { openSource } from '../../sources/registry.js';
import type { Source } from '../../sources/source.js';
import { checkMappings } from '../../sync/mappings.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { Wrap } from './index.js';

/** The outcome of testing one target (the warehouse, or one destination's credentials). */
interface TargetCheck {
  target: string;
  kind: string;
  ok: boolean;
  error: string | null;
  hint: string | null;
}

/** What a failed check prints: the message, its first cause (the driver's own words) and the hint. */
function failure(target: string, kind: string, error: unknown): TargetCheck {
  const message = errorMessage(error);
  const cause = error instanceof Error && error.cause !== undefined ? errorMessage(error.cause) : '';
  return {
    target,
    kind,
    ok: false,
    error: cause && !message.includes(cause) ? `${message}: ${cause}` : message,
    hint: isTailorError(error) ? (error.hint ?? null) : null,
  };
}

/**
 * Describes the model of every enabled activation in the warehouse (its SQL compiles there; nothing
 * is read) and checks the primary key and every mapped column against the columns it returns, as a
 * run would before sending anything. Every problem is an issue with its file and path.
 */
async function checkModels(
  source: Source,
  project: Project,
  activations: readonly ResolvedActivation[],
): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const described = new Map<string, string[] | null>();
  for (const activation of activations) {
    if (!activation.enabled) continue;
    const model = activation.model;
    let columns = described.get(model.name);
    if (columns === undefined) {
      try {
        columns = (await source.describeModel(model.name, model.sql)).map((column) => column.name);
      } catch (error) {
        columns = null;
        if (!isTailorError(error) || (error.kind !== 'model_sql' && error.kind !== 'config')) throw error;
        const cause = error.cause !== undefined ? errorMessage(error.cause) : '';
        const message = errorMessage(error);
        issues.push({
          file: relative(project.dir, model.sqlPath),
          path: '',
          message: cause && !message.includes(cause) ? `${message}: ${cause}` : message,
        });
      }
      described.set(model.name, columns);
    }
    if (columns === null) continue; // its SQL is reported once, above
    try {
      checkMappings(activation, columns);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      issues.push(...error.issues);
    }
  }
  return issues;
}

/**
 * Connects to the warehouse (a trivial query; no schema is created), describes the models of the
 * enabled activations there, and asks each destination to check its credentials and access to the
 * account. Targets are tested one after another so that a message says which one failed.
 */
async function checkTargets(
  ctx: CommandContext,
  project: Project,
  activations: readonly ResolvedActivation[],
): Promise<{ checks: TargetCheck[]; issues: ConfigIssue[]; described: number }> {
  // Errors are reported per target below; the client's own retry warnings would only repeat them.
  const logger = ctx.logger.child({}, { level: ctx.globals.debug ? 'debug' : 'error' });
  const checks: TargetCheck[] = [];
  let issues: ConfigIssue[] = [];
  let described = 0;
  const warehouse = project.config.warehouse.type;
  try {
    await using source = await openSource(project.config.warehouse, { projectDir: project.dir, logger });
    await source.check();
    checks.push({ target: 'warehouse', kind: warehouse, ok: true, error: null, hint: null });
    try {
      issues = await checkModels(source, project, activations);
      described = new Set(activations.filter((a) => a.enabled).map((a) => a.model.name)).size;
    } catch (error) {
      checks.push(failure('models', warehouse, error));
    }
  } catch (error) {
    checks.push(failure('warehouse', warehouse, error));
  }
  for (const [name, config] of Object.entries(project.config.destinations)) {
    const target = `destination ${name}`;
    try {
      const destination = createDestination(name, config, { logger });
      await destination.check(ctx.signal);
      checks.push({ target, kind: config.type, ok: true, error: null, hint: null });
    } catch (error) {
      checks.push(failure(target, config.type, error));
    }
  }
  return { checks, issues, described };
}

export function defineCheck(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('check')), [
    'tailor check --offline      # tailor.yml and models/ only, no connection',
    'tailor check                # also the warehouse and the X credentials',
    'tailor check --json --project path/to/project',
  ])
    .description(
      'validate tailor.yml and the models (every problem, with its file and path), then test the warehouse connection and X credentials',
    )
    .option('--offline', 'validate the files only; connect to nothing', false)
    .action(
      wrap(async (ctx, flags: { offline: boolean }) => {
        const project = await ctx.project();
        const activations = resolveActivations(project);
        const { checks, issues, described } = flags.offline
          ? { checks: [], issues: [], described: 0 }
          : await checkTargets(ctx, project, activations);
        const ok = issues.length === 0 && checks.every((check) => check.ok);
        if (ctx.globals.json) {
          ctx.printJson({
            ok,
            issues,
            warehouse: project.config.warehouse.type,
            models: [...project.models.keys()],
            destinations: Object.keys(project.config.destinations),
            activations: activations.map((a) => ({
              id: a.id,
              model: a.model.name,
              destination: a.destinationName,
              schedule: a.schedule.text,
              enabled: a.enabled,
            })),
            checks,
          });
        } else {
          ctx.print(
            `ok: ${project.models.size} model${project.models.size === 1 ? '' : 's'}, ` +
              `${Object.keys(project.config.destinations).length} destination(s), ${activations.length} activation(s) ` +
              `(warehouse: ${project.config.warehouse.type})`,
          );
          for (const check of checks) {
            ctx.print(
              check.ok
                ? `ok: ${check.target} (${check.kind}) reachable`
                : `failed: ${check.target} (${check.kind}): ${check.error}${check.hint ? `\n  hint: ${check.hint}` : ''}`,
            );
          }
          if (described > 0 && issues.length === 0) {
            ctx.print(
              `ok: ${described} model${described === 1 ? '' : 's'} of the enabled activations described in the warehouse (SQL, primary key, mapped columns)`,
            );
          }
          if (issues.length > 0) {
            ctx.print(
              `${issues.length} problem${issues.length === 1 ? '' : 's'} in the models, found in the warehouse:`,
            );
            for (const issue of issues) ctx.print(`  ${formatConfigIssue(issue)}`);
            if (project.config.warehouse.type === 'pglite' && issues.some((i) => i.file.endsWith('.sql')))
              ctx.print(
                '  hint: the embedded PGlite warehouse holds only what was loaded into it; for the example project, `npm start` seeds its sample',
              );
          }
        }
        // A model the warehouse rejects, or a mapped column it lacks, is the project's to fix.
        return issues.length > 0 ? EXIT.config : ok ? EXIT.ok : EXIT.failure;
      }),
    );
}
