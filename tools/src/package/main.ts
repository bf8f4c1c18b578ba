// npm run package: the public packages as installable tarballs in dist-packages/ (or the folder given).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packPublic } from './pack.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const outDir = resolve(process.argv[2] ?? resolve(root, 'dist-packages'));
for (const file of packPublic(root, outDir)) console.log(file);
