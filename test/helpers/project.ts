import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Writes a throwaway project directory from a map of relative paths to contents. */
export async function makeProject(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tailor-test-'));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return dir;
}

export const MINIMAL_TAILOR_YML = `warehouse:
  type: pglite
  url: .tailor/warehouse
destinations:
  x:
    type: x_ads
    account_id: 18ce54d4x5t
    api_url: http://127.0.0.1:4010
    credentials:
      consumer_key: ck
      consumer_secret: \${X_CONSUMER_SECRET}
      access_token: at
      access_token_secret: ats
activations:
  vip_x:
    model: vip
    destination: x
`;

export const VIP_MODEL = {
  'models/vip.sql': 'select customer_id, email from customers;\n',
  'models/vip.yml': 'name: vip\ndescription: VIPs\nprimary_key: customer_id\n',
};
