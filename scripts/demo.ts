// `npm start`: the embedded demo (see src/demo/run-demo.ts). Extra arguments go to `tailor sync --all`,
// e.g. `npm start -- --json`. TAILOR_DEMO_DIR points it at another copy of the example project.
import { fileURLToPath } from 'node:url';
import { runDemo } from '../src/demo/run-demo.js';

const projectDir = process.env.TAILOR_DEMO_DIR ?? fileURLToPath(new URL('..', import.meta.url));
process.exitCode = await runDemo({ projectDir, args: process.argv.slice(2) });
