import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The browser's script and stylesheet, bundled on first request by esbuild (a dependency already)
 * from src/ui/client/ with uPlot from node_modules: the UI loads nothing from the internet.
 */
export interface Assets {
  js: string;
  css: string;
}

/** The package root: the nearest directory above this module holding src/ui/client/ (src/ or dist/ runs). */
function clientDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'src', 'ui', 'client');
    if (existsSync(join(candidate, 'app.ts'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('cannot find src/ui/client/ (the web UI client) beside the installed Tailor');
}

let bundled: Promise<Assets> | undefined;

export function loadAssets(): Promise<Assets> {
  bundled ??= (async () => {
    const { build } = await import('esbuild');
    const dir = clientDir();
    const result = await build({
      entryPoints: [join(dir, 'app.ts'), join(dir, 'app.css')],
      bundle: true,
      minify: true,
      format: 'iife',
      platform: 'browser',
      target: ['chrome110', 'firefox110', 'safari16'],
      outdir: 'out',
      write: false,
      logLevel: 'silent',
    });
    const js = result.outputFiles.find((file) => file.path.endsWith('.js'));
    const css = result.outputFiles.find((file) => file.path.endsWith('.css'));
    if (!js || !css) throw new Error('bundling the web UI client produced no script or stylesheet');
    return { js: js.text, css: css.text };
  })();
  bundled.catch(() => (bundled = undefined));
  return bundled;
}
