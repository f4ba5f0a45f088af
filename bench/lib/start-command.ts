import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * The node arguments of `npm run start:api` / `npm run start:worker`, read from package.json, so a
 * bench or soak runs each process exactly as production does (its heap cap included).
 */
export function startArgs(role: 'api' | 'worker'): string[] {
  const script: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts[`start:${role}`];
  const [node, ...args] = script.trim().split(/\s+/);
  if (node !== 'node') throw new Error(`start:${role} is not a plain node command: ${script}`);
  return args;
}
