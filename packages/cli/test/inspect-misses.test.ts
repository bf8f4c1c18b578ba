// attnopt inspect lists the Softmax nodes that look like attention but were not lifted, with the rule's
// reason (text and --json), and says why a model has no attention site.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { saveModel, parseGraph } from '@attnopt/core';
import { attnoptInProcess } from './run-captured.js';

const scratch = mkdtempSync(join(tmpdir(), 'attnopt-misses-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A model file of `text` (IR text form) at opset 17. */
function modelFile(name: string, text: string): string {
  const file = join(scratch, name);
  writeFileSync(file, saveModel({ graph: parseGraph(text), proto: { irVersion: 10n, opsetImport: [{ domain: '', version: 17n }] } }));
  return file;
}

// Softmax -> Cast -> Reshape -> bmm with V, whose scores are a model input rather than Q · Kᵀ: no rule lifts it.
const unliftable = modelFile(
  'unliftable.onnx',
  `graph unliftable {
  input %scores: f32[B, 4, 8, 8]
  input %v: f32[B, 4, 8, 16]
  init %p3: i64[3] = tensor<i64[3]> [-1, 8, 8]
  init %v3: i64[3] = tensor<i64[3]> [-1, 8, 16]
  %p = Softmax(%scores) {axis = -1}
  %c = Cast(%p) {to = 1}
  %r = Reshape(%c, %p3)
  %vr = Reshape(%v, %v3)
  %y = MatMul(%r, %vr)
  output %y
}`,
);
const noAttention = modelFile('relu.onnx', 'graph g {\n  input %x: f32[2]\n  %y = Relu(%x)\n  output %y\n}');

describe('attnopt inspect: misses', () => {
  test('the text output says why there is no site and lists the missed Softmax with its reason', async () => {
    const r = await attnoptInProcess('inspect', unliftable);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`${unliftable}: 0 attention sites: 1 Softmax node looks like attention but no rule lifted it (reasons below)`);
    expect(lines[1]).toBe('  not lifted: 1 node that looks like attention');
    expect(lines[2]).toMatch(/^ {4}node Softmax -> %p: \S/);
    expect(lines[2]).not.toContain('no recognition rule matched it');
  });

  test('--json carries misses as [{ node, reason }] and noSites', async () => {
    const r = await attnoptInProcess('inspect', unliftable, '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.sites).toEqual([]);
    expect(report.misses).toEqual([{ node: 'node Softmax -> %p', reason: expect.any(String) }]);
    expect(report.noSites).toContain('looks like attention');
  });

  test('a model with no Softmax says so, with no misses', async () => {
    const r = await attnoptInProcess('inspect', noAttention, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ sites: [], misses: [], noSites: 'the model has no Softmax node and no fused attention op the recognizer knows' });
  });
});
