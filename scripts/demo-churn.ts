// `npm run demo:churn`: change the demo's sample data deterministically, so the next `npm start`
// shows adds, removes and changes. TAILOR_DEMO_DIR points it at another copy of the example project.
import { fileURLToPath } from 'node:url';
import { runChurn } from '../src/demo/run-demo.js';

const projectDir = process.env.TAILOR_DEMO_DIR ?? fileURLToPath(new URL('..', import.meta.url));
process.exitCode = await runChurn({ projectDir });
