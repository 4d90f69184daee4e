// `npm start`: the embedded demo (see src/demo/run-demo.ts). Extra arguments go to `tailor sync --all`,
// e.g. `npm start -- --json`. TAILOR_DEMO_DIR points it at another copy of the example project, and
// TAILOR_DEMO_CUSTOMERS sizes a fresh sample (tests use a small one).
import { fileURLToPath } from 'node:url';
import { runDemo } from '../src/demo/run-demo.js';

const projectDir = process.env.TAILOR_DEMO_DIR ?? fileURLToPath(new URL('..', import.meta.url));
const customers = process.env.TAILOR_DEMO_CUSTOMERS ? Number(process.env.TAILOR_DEMO_CUSTOMERS) : undefined;
process.exitCode = await runDemo({
  projectDir,
  args: process.argv.slice(2),
  ...(customers === undefined ? {} : { customers }),
});
