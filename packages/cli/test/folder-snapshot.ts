// What a folder holds, to compare before and after a command: every entry by relative path with its kind,
// and for a regular file the SHA-256 of its bytes, for a link its target, for a device its device number.

import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export function snapshot(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const key = prefix + name;
    const st = lstatSync(path);
    if (st.isSymbolicLink()) out[key] = `link -> ${readlinkSync(path)}`;
    else if (st.isDirectory()) {
      out[key] = 'folder';
      Object.assign(out, snapshot(path, `${key}/`));
    } else if (st.isFile()) out[key] = `file ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
    else if (st.isCharacterDevice() || st.isBlockDevice()) out[key] = `device ${st.rdev}`;
    else out[key] = st.isFIFO() ? 'fifo' : 'other';
  }
  return out;
}
