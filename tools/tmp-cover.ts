import fs from 'node:fs';
import path from 'node:path';
import { importOnnx } from '@attnopt/onnx';
import { planGraph, UnsupportedOpsError } from '@attnopt/backend-cpu';
const root = '/work/shared/fixtures/onnx/onnx-node-tests';
let ok = 0, total = 0;
const missing = new Map<string, number>();
for (const d of fs.readdirSync(root).filter((d) => d.endsWith('_expanded') || !d.includes('attention'))) {
  const f = path.join(root, d, 'model.onnx');
  if (!fs.existsSync(f)) continue;
  let m; try { m = importOnnx(f); } catch { continue; }
  total++;
  const opset = Number(m.proto.opsetImport?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 17);
  try { planGraph(m.graph, { opset }); ok++; } catch (e) {
    if (e instanceof UnsupportedOpsError) for (const k of new Set(e.nodes.map((n) => `${n.domain}::${n.op} (${n.reason})`))) missing.set(k, (missing.get(k) ?? 0) + 1);
    else console.log(d, (e as Error).message.slice(0, 120));
  }
}
console.log(`${ok}/${total} plan`);
console.log([...missing].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v}  ${k}`).join('\n'));
