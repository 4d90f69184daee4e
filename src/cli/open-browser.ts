import { spawn } from 'node:child_process';

/**
 * Opens `url` in the user's browser: `$BROWSER` when set, else the platform's opener (xdg-open,
 * open, start). Resolves false when none could be started; the URL is printed anyway.
 */
export function openBrowser(
  url: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<boolean> {
  const [command, args] =
    env.BROWSER !== undefined && env.BROWSER !== ''
      ? [env.BROWSER, [url]]
      : process.platform === 'darwin'
        ? ['open', [url]]
        : process.platform === 'win32'
          ? ['cmd', ['/c', 'start', '""', url]]
          : ['xdg-open', [url]];
  return new Promise((resolve) => {
    try {
      const child = spawn(command, args, { stdio: 'ignore', detached: true });
      child.once('error', () => resolve(false));
      child.once('spawn', () => {
        child.unref();
        resolve(true);
      });
    } catch {
      resolve(false);
    }
  });
}
