// The guarded WebAssembly kernel (contract in ../guard/guard-shape.ts): one module with
//   0 attend(q, out, blocks, nBlocks, scratch, rows)    the plain block kernel (wasm-attention.ts)
//   1 certify(item, scratch) -> flagged rows            m_hat per row from the dropped segments' summaries
//   2 attendGuarded(item, scratch)                      attend (sparse), certify, then the fallback
//   3 summarize(k, n, out), 4 valueRange(v, n)          the per-call summaries, built once per call
//   5 summarizeItems(item, scratch)                     a summary item's segments and V range (on a worker)
// certify works on strips of 4 query rows, SIMD over the head dim: per entry the segment's box centre (then,
// where the ball's term is large, its half-widths) is loaded once per step for the 4 rows; the 4 rows' bounds
// come out as one vector, so the exponent, the row-range mask and the accumulation of B are one f32x4 each. The kernel's running max and sum are in base 2
// (t = s · log2 e), so the bound is moved to base 2 too: B = Σ count · 2^(U log2 e - m).
// A row flags when m_hat · R > epsilon, or when it kept no key but B > 0 (it may drop one): the pre-check's B then
// sends its strip to the per-segment bounds, whose B decides.
// Fallback: when at least half of the block's strips hold a flagged row the whole block is recomputed over the
// model's own key-block list; otherwise each flagged strip is, with the list copied and its mask-tile addresses
// moved to the strip's rows.

import { ModuleBuilder, type FunctionBuilder } from './emitter.js';
import { emitExp2, emitTransposeReduce } from './simd-math.js';
import { type FullKernelShape, ROW_EMPTY } from './kernel-shape.js';
import { addAttendFunction } from './wasm-attention.js';
import { CERTIFICATE_SLACK, ENTRY_WORDS, EXPONENT_CLAMP, GUARD_ITEM as IT, guardScratch, segmentFloats, segmentOffsets, SUMMARY_ITEM as SI, SUMMARY_WIDENING } from '../guard/guard-shape.js';

export function wasmGuardedModule(shape: FullKernelShape, epsilon: number, cacheKey: string): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder(cacheKey);
  addAttendFunction(m, shape);
  addCertify(m, shape, epsilon);
  addAttendGuarded(m, shape);
  addSummarize(m, shape);
  addValueRange(m, shape);
  addSummarizeItems(m, shape);
  return m.build();
}

/**
 * 3 summarize(k, n, out): the segment record (guard-shape.ts) of the n keys at k (row stride kStride): per
 * channel the box centre (lo + hi) / 2 and the half-width max(hi - c, c - lo), the largest distance from the
 * centre (radius) and the largest key norm (the last three times SUMMARY_WIDENING).
 * lo and hi by the one-instruction pseudo-min / max, which pass a NaN over; beside them each channel's sum, which
 * carries one: lo and hi get sum - sum added (0, or NaN after a NaN or an infinite key), so such a key still
 * leaves its segment with no bound. The distances' sums run in two accumulators (even and odd channel steps).
 */
function addSummarize(m: ModuleBuilder, shape: FullKernelShape): void {
  const { dPad: DP, kStride: KS } = shape;
  const at = segmentOffsets(DP);
  const f = m.func('summarize', { k: 'i32', n: 'i32', out: 'i32' });
  for (const n of ['kp', 'ke']) f.local(n, 'i32');
  for (const n of ['lo', 'hi', 'sum', 'ce', 'x', 'acc', 'acc2', 'nrm', 'nrm2']) f.local(n, 'v128');
  f.local('r2', 'f32').local('n2', 'f32');
  f.get('k').get('n').i32(KS * 4).i32Mul().i32Add().set('ke');
  f.forRange('c0', 0, DP * 4, 16, (g) => {
    g.get('k').get('c0').i32Add().tee('kp').v128Load().tee('lo').tee('hi').set('sum');
    g.get('kp').i32(KS * 4).i32Add().tee('kp').get('ke').i32LtS().if((h) =>
      h.loop((l) => {
        l.get('kp').v128Load().set('x');
        l.get('lo').get('x').f32x4Pmin().set('lo');
        l.get('hi').get('x').f32x4Pmax().set('hi');
        l.get('sum').get('x').f32x4Add().set('sum');
        l.get('kp').i32(KS * 4).i32Add().tee('kp').get('ke').i32LtS().brIf(0);
      }),
    );
    g.get('sum').get('sum').f32x4Sub().tee('x').get('lo').f32x4Add().set('lo');
    g.get('x').get('hi').f32x4Add().set('hi');
    g.get('lo').get('hi').f32x4Add().f32x4Const(0.5).f32x4Mul().set('ce');
    g.get('out').get('c0').i32Add().tee('kp').get('ce').v128Store(at.center * 4);
    g.get('kp').get('hi').get('ce').f32x4Sub().get('ce').get('lo').f32x4Sub().f32x4Max().f32x4Const(SUMMARY_WIDENING).f32x4Mul().v128Store(at.half * 4);
  });
  f.f32(0).set('r2').f32(0).set('n2');
  f.get('k').set('kp');
  f.loop((l) => {
    for (const n of ['acc', 'acc2', 'nrm', 'nrm2']) l.f32x4Const(0).set(n);
    for (let c0 = 0; c0 < DP; c0 += 4) {
      const [acc, nrm] = (c0 / 4) % 2 === 0 ? ['acc', 'nrm'] : ['acc2', 'nrm2'];
      l.get('kp').v128Load(c0 * 4).tee('ce').get('out').v128Load((at.center + c0) * 4).f32x4Sub().tee('x').get('x').f32x4Mul().get(acc).f32x4Add().set(acc);
      l.get('ce').get('ce').f32x4Mul().get(nrm).f32x4Add().set(nrm);
    }
    l.get('acc').get('acc2').f32x4Add().set('acc');
    l.get('nrm').get('nrm2').f32x4Add().set('nrm');
    // f32.max propagates NaN
    l.get('r2').get('acc').f32x4ExtractLane(0).get('acc').f32x4ExtractLane(1).f32Add().get('acc').f32x4ExtractLane(2).f32Add().get('acc').f32x4ExtractLane(3).f32Add().f32Max().set('r2');
    l.get('n2').get('nrm').f32x4ExtractLane(0).get('nrm').f32x4ExtractLane(1).f32Add().get('nrm').f32x4ExtractLane(2).f32Add().get('nrm').f32x4ExtractLane(3).f32Add().f32Max().set('n2');
    l.get('kp').i32(KS * 4).i32Add().tee('kp').get('ke').i32LtS().brIf(0);
  });
  f.get('out').get('r2').f32Sqrt().f32(SUMMARY_WIDENING).f32Mul().f32Store(at.radius * 4);
  f.get('out').get('n2').f32Sqrt().f32(SUMMARY_WIDENING).f32Mul().f32Store(at.norm * 4);
}

/**
 * 4 valueRange(v, n) -> f32: the largest max - min of one V column over the n rows at v (row stride vStride).
 * Up to 64 columns (a head's row of 4 lines) per pass over the rows, each line of V read once and the lines of a
 * row together (rows of interleaved heads are far apart); pseudo-min / max, and a sum per column that carries a
 * NaN or an infinite value into the range (as summarize does).
 */
function addValueRange(m: ModuleBuilder, shape: FullKernelShape): void {
  const { dvOut: DVO, vStride: VS } = shape;
  const f = m.func('valueRange', { v: 'i32', n: 'i32' }, ['f32']);
  for (const n of ['vp', 've']) f.local(n, 'i32');
  for (const n of ['x', 'best']) f.local(n, 'v128');
  const LINE = Math.min(16, DVO / 4); // f32x4 columns per pass: a row of a head of up to 64 values
  for (let c = 0; c < LINE; c++) f.local(`lo${c}`, 'v128').local(`hi${c}`, 'v128').local(`sum${c}`, 'v128');
  f.get('v').get('n').i32(VS * 4).i32Mul().i32Add().set('ve');
  f.f32x4Const(0).set('best');
  for (let c0 = 0; c0 < DVO; c0 += 4 * LINE) {
    const chunks = Math.min(LINE, (DVO - c0) / 4);
    f.get('v').set('vp');
    for (let c = 0; c < chunks; c++) f.get('vp').v128Load((c0 + 4 * c) * 4).tee(`lo${c}`).tee(`hi${c}`).set(`sum${c}`);
    f.get('vp').i32(VS * 4).i32Add().tee('vp').get('ve').i32LtS().if((h) =>
      h.loop((l) => {
        for (let c = 0; c < chunks; c++) {
          l.get('vp').v128Load((c0 + 4 * c) * 4).set('x');
          l.get(`lo${c}`).get('x').f32x4Pmin().set(`lo${c}`);
          l.get(`hi${c}`).get('x').f32x4Pmax().set(`hi${c}`);
          l.get(`sum${c}`).get('x').f32x4Add().set(`sum${c}`);
        }
        l.get('vp').i32(VS * 4).i32Add().tee('vp').get('ve').i32LtS().brIf(0);
      }),
    );
    // max propagates NaN: hi - lo + (sum - sum)
    for (let c = 0; c < chunks; c++) f.get('best').get(`hi${c}`).get(`lo${c}`).f32x4Sub().get(`sum${c}`).get(`sum${c}`).f32x4Sub().f32x4Add().f32x4Max().set('best');
  }
  f.get('best').f32x4ExtractLane(0).get('best').f32x4ExtractLane(1).f32Max().get('best').f32x4ExtractLane(2).f32Max().get('best').f32x4ExtractLane(3).f32Max();
}

const W = (word: number) => word * 4;

/** 5 summarizeItems(item, scratch): the summary item's segment records (3) and, when its v is not 0, its V range (4). */
function addSummarizeItems(m: ModuleBuilder, shape: FullKernelShape): void {
  const { dPad: DP, kStride: KS } = shape;
  const SEG = segmentFloats(DP) * 4;
  const f = m.func('summarizeItems', { item: 'i32', scratch: 'i32' });
  for (const n of ['k', 'starts', 's0', 's1', 'out', 'v', 'j0']) f.local(n, 'i32');
  f.get('item').i32Load(W(SI.k)).set('k');
  f.get('item').i32Load(W(SI.starts)).set('starts');
  f.get('item').i32Load(W(SI.s0)).set('s0');
  f.get('item').i32Load(W(SI.s1)).set('s1');
  f.get('item').i32Load(W(SI.out)).set('out');
  f.forRange('s', 's0', 's1', 1, (g) => {
    // summarize(k + starts[s] kStride, starts[s + 1] - starts[s], out + s SEG)
    g.get('starts').get('s').i32(4).i32Mul().i32Add().tee('j0').i32Load(0).i32(KS * 4).i32Mul().get('k').i32Add();
    g.get('j0').i32Load(4).get('j0').i32Load(0).i32Sub();
    g.get('out').get('s').i32(SEG).i32Mul().i32Add();
    g.call(3);
  });
  f.get('item').i32Load(W(SI.v)).tee('v').if((g) => {
    g.get('item').i32Load(W(SI.vRange));
    g.get('v').get('item').i32Load(W(SI.valid)).call(4);
    g.f32Store(0);
  });
}

function addCertify(m: ModuleBuilder, shape: FullKernelShape, epsilon: number): void {
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP, softcap, scale, qStride: QS } = shape;
  const M_AT = BQ * DVP * 4 + BQ * BK * 4;
  const L_AT = M_AT + BQ * 4;
  const g = guardScratch(shape, 0);
  const at = segmentOffsets(DP);
  const f = m.func('certify', { item: 'i32', scratch: 'i32' }, ['i32']);
  for (const n of ['q', 'rows', 'rowsPad', 'entries', 'nEntries', 'cert', 'qs', 'ep', 'seg', 'c0', 'x0']) f.local(n, 'i32');
  for (const n of ['rsF', 'rowLo', 'rowHi', 'questAt', 'coarseNorm']) f.local(n, 'f32');
  for (const n of ['hi', 'ce', 'qv', 'qn', 'b', 'dot', 'ball', 'tb', 'thr', 'rowIdx', 'lanes', 'cnt', 'l', 'mh', 'fl', 'x']) f.local(n, 'v128');
  for (let r = 0; r < 4; r++) f.local(`aq${r}`, 'v128').local(`ab${r}`, 'v128');

  f.get('item').i32Load(W(IT.q)).set('q');
  f.get('item').i32Load(W(IT.rows)).set('rows');
  f.get('item').i32Load(W(IT.entries)).set('entries');
  f.get('item').i32Load(W(IT.nEntries)).set('nEntries');
  f.get('item').i32Load(W(IT.cert)).set('cert');
  f.get('rows').i32(3).i32Add().i32(-4).i32And().set('rowsPad');
  // an entry's ball term above l · questAt also takes Quest's bound (guard-shape.ts): questAt = epsilon / (4 nEntries R)
  f.f32(epsilon / 4).get('nEntries').f32ConvertI32().f32Div().get('item').i32Load(W(IT.vRange)).f32Load(0).f32Div().set('questAt');
  // the largest key norm over the entries' segments (f32.max keeps a NaN), for the pre-check
  f.f32(0).set('coarseNorm');
  f.forRange('e', 0, 'nEntries', 1, (u) => {
    u.get('coarseNorm').get('entries').get('e').i32(ENTRY_WORDS * 4).i32Mul().i32Add().i32Load(0).f32Load(at.norm * 4).f32Max().set('coarseNorm');
  });
  // lane offsets (0.5, 1.5, 2.5, 3.5): row index of each lane of a strip, plus a half
  for (let r = 0; r < 4; r++) f.get('scratch').f32(r + 0.5).f32Store(g.lanes + 4 * r);
  f.get('scratch').v128Load(g.lanes).set('lanes');
  f.f32x4Const(0).set('cnt');

  f.forRange('rs', 0, 'rowsPad', 4, (h) => {
    h.get('q').get('rs').i32(QS * 4).i32Mul().i32Add().set('qs');
    h.get('rs').f32ConvertI32().tee('rsF').f32x4Splat().get('lanes').f32x4Add().set('rowIdx');
    // ||q|| of the strip's 4 rows
    for (let r = 0; r < 4; r++) h.f32x4Const(0).set(`aq${r}`);
    h.forRange('c0', 0, DP * 4, 16, (u) => {
      for (let r = 0; r < 4; r++) u.get('qs').get('c0').i32Add().v128Load(r * QS * 4).tee('qv').get('qv').f32x4Mul().get(`aq${r}`).f32x4Add().set(`aq${r}`);
    });
    emitTransposeReduce(h, 'add', ['aq0', 'aq1', 'aq2', 'aq3'], 'tr');
    h.f32x4Sqrt().set('qn');
    // pre-check: Cauchy-Schwarz over all the block's dropped keys at once
    h.get('qn').get('coarseNorm').f32x4Splat().f32x4Mul().f32x4Const(scale).f32x4Mul();
    emitCap(h);
    h.get('item').f32Load(W(IT.coarseBias)).f32x4Splat().f32x4Add().f32x4Const(Math.LOG2E).f32x4Mul();
    h.get('scratch').get('rs').i32(4).i32Mul().i32Add().v128Load(M_AT).f32x4Sub().f32x4Const(EXPONENT_CLAMP).f32x4Pmin();
    emitExp2(h, 'ex');
    h.get('item').f32Load(W(IT.coarseCount)).f32x4Splat().f32x4Mul().set('b');
    emitFinish(h);
    // else the per-segment bounds: the ball, and Quest where the ball's term is large
    h.get('fl').v128AnyTrue().if((t) => {
      t.f32x4Const(0).set('b');
      // the threshold l · epsilon / (4 nEntries R) per lane (0 on a row that kept no key, R > 0: Quest always)
      t.get('scratch').get('rs').i32(4).i32Mul().i32Add().tee('ep');
      t.v128Load(L_AT).get('ep').v128Load(M_AT).f32x4Const(ROW_EMPTY).f32x4Gt().v128And().get('questAt').f32x4Splat().f32x4Mul().set('thr');
      t.forRange('e', 0, 'nEntries', 1, (u) => {
        u.get('entries').get('e').i32(ENTRY_WORDS * 4).i32Mul().i32Add().set('ep');
        u.get('ep').f32Load(8).set('rowLo');
        u.get('ep').f32Load(12).set('rowHi');
        // the entry holds dropped keys for one of this strip's rows: rowLo < rs + 4 and rowHi > rs
        u.get('rowLo').get('rsF').f32(4).f32Add().f32Lt().get('rowHi').get('rsF').f32Gt().i32And().if((v) => emitEntry(v));
      });
      emitFinish(t);
    });
    h.get('cert').get('rs').i32(4).i32Mul().i32Add().get('mh').v128Store();
    h.get('scratch').get('rs').i32(4).i32Mul().i32Add().get('fl').v128Store(g.flags);
    h.get('cnt').get('fl').f32x4Const(1).v128And().f32x4Add().set('cnt');
  });
  f.get('cnt').f32x4ExtractLane(0).get('cnt').f32x4ExtractLane(1).f32Add().get('cnt').f32x4ExtractLane(2).f32Add().get('cnt').f32x4ExtractLane(3).f32Add().i32TruncF32();

  /** From B: m_hat = B / (Z_S + B) (Z_S := 0 on a row that kept no key) in mh, the row flags in fl. */
  function emitFinish(h: FunctionBuilder): void {
    h.get('b').f32x4Const(CERTIFICATE_SLACK).f32x4Mul().set('b');
    h.get('scratch').get('rs').i32(4).i32Mul().i32Add().tee('ep');
    h.v128Load(L_AT).get('ep').v128Load(M_AT).f32x4Const(ROW_EMPTY).f32x4Gt().v128And().get('b').f32x4Add().f32x4Const(1e-30).f32x4Pmax().set('l');
    h.get('b').get('l').f32x4Div().set('mh');
    // flag = not(epsilon >= m_hat · R) (a NaN bound flags), or the row kept no key (m <= ROW_EMPTY) but B > 0: its
    // sparse output, 0, is then no convex combination of V and m_hat · R bounds nothing; only on rows that exist
    h.f32x4Const(epsilon).get('mh').get('item').i32Load(W(IT.vRange)).f32Load(0).f32x4Splat().f32x4Mul().f32x4Ge().v128Not();
    h.get('ep').v128Load(M_AT).f32x4Const(ROW_EMPTY).f32x4Gt().v128Not().get('b').f32x4Const(0).f32x4Gt().v128And().v128Or();
    h.get('rows').f32ConvertI32().f32x4Splat().get('rowIdx').f32x4Gt().v128And().set('fl');
  }

  /** The softcap on the vector on the stack: cap · tanh(y / cap) = cap - 2 cap / (e^(2y / cap) + 1), monotone. */
  function emitCap(v: FunctionBuilder): void {
    if (softcap <= 0) return;
    v.f32x4Const((2 * Math.LOG2E) / softcap).f32x4Mul();
    emitExp2(v, 'cx', true);
    v.f32x4Const(1).f32x4Add().set('x');
    v.f32x4Const(softcap).f32x4Const(2 * softcap).get('x').f32x4Div().f32x4Sub();
  }

  /**
   * B += count · 2^((U + max bias) log2 e - m) on the lanes of rows the entry applies to. First the ball, U = q · c +
   * ||q|| radius (one product per channel and row); where its term exceeds thr on a lane, also Quest's width
   * |q| · half (a second pass over the channels) and U = q · c + min(|q| · half, ||q|| radius).
   */
  function emitEntry(v: FunctionBuilder): void {
    v.get('ep').i32Load(0).set('seg');
    for (let r = 0; r < 4; r++) v.f32x4Const(0).set(`ab${r}`);
    v.forRange('c0', 0, DP * 4, 16, (w) => {
      w.get('seg').get('c0').i32Add().v128Load(at.center * 4).set('ce');
      w.get('qs').get('c0').i32Add().set('x0');
      for (let r = 0; r < 4; r++) w.get('x0').v128Load(r * QS * 4).get('ce').f32x4Mul().get(`ab${r}`).f32x4Add().set(`ab${r}`);
    });
    emitTransposeReduce(v, 'add', ['ab0', 'ab1', 'ab2', 'ab3'], 'tr');
    v.set('dot');
    v.get('qn').get('seg').f32Load(at.radius * 4).f32x4Splat().f32x4Mul().set('ball');
    v.get('dot').get('ball').f32x4Add();
    emitTermOf(v);
    v.set('tb');
    v.get('tb').get('thr').f32x4Gt().v128AnyTrue().if(
      (w) => {
        for (let r = 0; r < 4; r++) w.f32x4Const(0).set(`aq${r}`);
        w.forRange('c0', 0, DP * 4, 16, (y) => {
          y.get('seg').get('c0').i32Add().v128Load(at.half * 4).set('hi');
          y.get('qs').get('c0').i32Add().set('x0');
          for (let r = 0; r < 4; r++) y.get('x0').v128Load(r * QS * 4).f32x4Abs().get('hi').f32x4Mul().get(`aq${r}`).f32x4Add().set(`aq${r}`);
        });
        // pmin keeps Quest's NaN (a non-finite key)
        emitTransposeReduce(w, 'add', ['aq0', 'aq1', 'aq2', 'aq3'], 'tr');
        w.get('ball').f32x4Pmin().get('dot').f32x4Add();
        emitTermOf(w);
        w.get('b').f32x4Add().set('b');
      },
      (w) => w.get('b').get('tb').f32x4Add().set('b'),
    );
  }

  /** The bound U (raw scores) on the stack -> count · 2^((U scale (+ softcap) + max bias) log2 e - m), masked to the entry's rows. */
  function emitTermOf(v: FunctionBuilder): void {
    v.f32x4Const(scale).f32x4Mul();
    emitCap(v);
    v.get('ep').f32Load(16).f32x4Splat().f32x4Add().f32x4Const(Math.LOG2E).f32x4Mul();
    v.get('scratch').get('rs').i32(4).i32Mul().i32Add().v128Load(M_AT).f32x4Sub().f32x4Const(EXPONENT_CLAMP).f32x4Pmin();
    emitExp2(v, 'ex');
    v.get('ep').f32Load(4).f32x4Splat().f32x4Mul();
    // lanes with rowLo < row + 1/2 < rowHi
    v.get('rowIdx').get('rowLo').f32x4Splat().f32x4Gt().v128And();
    v.get('rowHi').f32x4Splat().get('rowIdx').f32x4Gt().v128And();
  }
}

function addAttendGuarded(m: ModuleBuilder, shape: FullKernelShape): void {
  const { blockK: BK, qStride: QS, oStride: OS } = shape;
  const g = guardScratch(shape, 0);
  const f = m.func('attendGuarded', { item: 'i32', scratch: 'i32' });
  for (const n of ['q', 'out', 'rows', 'rowsPad', 'base', 'nBase', 'flagged', 'strips', 'redo', 'src', 'dst', 'tile', 'n']) f.local(n, 'i32');
  f.get('item').i32Load(W(IT.q)).set('q');
  f.get('item').i32Load(W(IT.out)).set('out');
  f.get('item').i32Load(W(IT.rows)).set('rows');
  f.get('item').i32Load(W(IT.base)).set('base');
  f.get('item').i32Load(W(IT.nBase)).set('nBase');
  f.get('rows').i32(3).i32Add().i32(-4).i32And().set('rowsPad');
  // the sparse form
  f.get('q').get('out').get('item').i32Load(W(IT.blocks)).get('item').i32Load(W(IT.nBlocks)).get('scratch').get('rows').call(0);
  f.get('item').get('scratch').call(1).tee('flagged');
  f.get('item').get('flagged').i32Store(W(IT.flagged));
  f.i32(0).set('redo');
  f.if((h) => {
    h.i32(0).set('strips');
    h.forRange('rs', 0, 'rowsPad', 4, (u) => {
      u.get('scratch').get('rs').i32(4).i32Mul().i32Add().v128Load(g.flags).v128AnyTrue().get('strips').i32Add().set('strips');
    });
    h.get('strips').i32(2).i32Mul().get('rowsPad').i32(2).i32ShrU().i32GeS().if(
      (u) => {
        // most strips: the whole block over the model's own key blocks
        u.get('q').get('out').get('base').get('nBase').get('scratch').get('rows').call(0);
        u.get('rows').set('redo');
      },
      (u) => {
        u.forRange('rs', 0, 'rowsPad', 4, (v) => {
          v.get('scratch').get('rs').i32(4).i32Mul().i32Add().v128Load(g.flags).v128AnyTrue().if((w) => {
            // the list with its mask tiles moved to the strip's rows
            w.get('scratch').i32(g.list).i32Add().set('dst');
            w.get('base').set('src');
            w.forRange('k', 0, 'nBase', 1, (x) => {
              x.get('dst').get('src').i32Load(0).i32Store(0);
              x.get('dst').get('src').i32Load(4).i32Store(4);
              x.get('src').i32Load(8).tee('tile').if((y) => y.get('tile').get('rs').i32(BK * 4).i32Mul().i32Add().set('tile'));
              x.get('dst').get('tile').i32Store(8);
              x.get('src').i32(12).i32Add().set('src');
              x.get('dst').i32(12).i32Add().set('dst');
            });
            w.get('rows').get('rs').i32Sub().tee('n').i32(4).i32GtS().if((y) => y.i32(4).set('n'));
            w.get('q').get('rs').i32(QS * 4).i32Mul().i32Add();
            w.get('out').get('rs').i32(OS * 4).i32Mul().i32Add();
            w.get('scratch').i32(g.list).i32Add().get('nBase').get('scratch').get('n').call(0);
            w.get('redo').get('n').i32Add().set('redo');
          });
        });
      },
    );
  });
  f.get('item').get('redo').i32Store(W(IT.recomputed));
}
