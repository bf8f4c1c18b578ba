// The WebAssembly SIMD128 body of `attend` (contract in ../kernels.ts). Per key block, per strip of 4
// query rows:
//   1. S = Q Kᵀ: 2-row x 4-key tiles, SIMD over the head dim (8 accumulators, a loop of one 4-wide step),
//      each tile's 8 vectors transpose-reduced to 2 vectors of 4 scores; then t = (scale · s [capped]
//      [+ tile, MASKED where the tile masks]) · log2 e, so the softmax runs in base 2;
//   2. softmax of the strip: row maxima (4 at once), α = 2^(m - m'), p = 2^(t - m'), l = α l + Σ p;
//   3. O = α O + P V: 4-row x 8-column tiles, SIMD over the value dim, a loop of one key per step.
// On a Partial block all three run only over the strip's key range: the 4-key groups from the first to
// the last one where the tile keeps a key for one of the strip's rows (a scan of the tile); a strip that
// keeps no key of the block skips it.
// Every hot loop has a one-step body (see the note in emitter.ts on V8's load scheduling).

import { ModuleBuilder, type FunctionBuilder } from './emitter.js';
import { emitExp2, emitSplatLane, emitTransposeReduce } from './simd-math.js';
import { type FullKernelShape, MASKED, ROW_EMPTY, ROW_UNSET } from './kernel-shape.js';

export function wasmAttentionModule(shape: FullKernelShape, cacheKey: string): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder(cacheKey);
  addAttendFunction(m, shape);
  return m.build();
}

/** Adds `attend` (the first function of `m`, index 0 for calls) to a module. */
export function addAttendFunction(m: ModuleBuilder, shape: FullKernelShape): void {
  const { blockQ: BQ, blockK: BK, dPad: DP, dvPad: DVP, dvOut: DVO, softcap, scale, qStride: QS, kStride: KS, vStride: VS, oStride: OS } = shape;
  const f = m.func('attend', { q: 'i32', out: 'i32', blocks: 'i32', nBlocks: 'i32', scratch: 'i32', rows: 'i32' });
  // scratch layout (bytes)
  const S_AT = BQ * DVP * 4; // scores of the current strip [4][BK]
  const M_AT = S_AT + BQ * BK * 4; // running max [BQ] (base-2 units)
  const L_AT = M_AT + BQ * 4; // running sum [BQ]
  for (const n of ['e', 'kp', 'vp', 'tile', 'qs', 'qc', 'qe', 'kc', 'sp', 'tp', 'op', 'vc', 'pc', 'pe', 'mp', 'yp', 'jlo', 'jhi']) f.local(n, 'i32');
  for (const n of ['q0', 'q1', 'k0', 'k1', 'k2', 'k3', 'x', 'v0', 'v1', 'ps', 'mold', 'mnew', 'alpha', 'mr', 'sum', 'inv']) f.local(n, 'v128');
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) f.local(`a${r}${c}`, 'v128');
  for (let r = 0; r < 4; r++) f.local(`al${r}`, 'v128').local(`mx${r}`, 'v128');

  // init: m = unset, l = 0, O = 0
  f.forRange('x0', 0, BQ * 4, 16, (g) => {
    g.get('scratch').get('x0').i32Add().tee('mp').f32x4Const(ROW_UNSET).v128Store(M_AT);
    g.get('mp').f32x4Const(0).v128Store(L_AT);
  });
  f.forRange('x0', 0, BQ * DVP * 4, 16, (g) => {
    g.get('scratch').get('x0').i32Add().f32x4Const(0).v128Store();
  });

  // strips cover the rows that exist (a last query block may be short)
  f.local('rowsPad', 'i32').get('rows').i32(3).i32Add().i32(-4).i32And().set('rowsPad');
  f.forRange('b', 0, 'nBlocks', 1, (g) => {
    g.get('blocks').get('b').i32(12).i32Mul().i32Add().tee('e').i32Load(0).set('kp');
    g.get('e').i32Load(4).set('vp');
    g.get('e').i32Load(8).set('tile');
    g.forRange('rs', 0, 'rowsPad', 4, (h) => {
      h.get('q').get('rs').i32(QS * 4).i32Mul().i32Add().set('qs');
      h.get('tile').if(
        (t) => emitKeyRange(t),
        (t) => t.i32(0).set('jlo').i32(BK).set('jhi'),
      );
      h.get('jlo').get('jhi').i32LtS().if((t) => {
        t.get('tile').if(
          (u) => emitScores(u, shape, S_AT, true),
          (u) => emitScores(u, shape, S_AT, false),
        );
        emitStripSoftmax(t, shape, S_AT, M_AT, L_AT);
        emitStripPV(t, shape, S_AT);
      });
    });
  });

  // finish rows r < rows: Y = O / l, or 0 where no key was kept
  f.forRange('r', 0, 'rows', 1, (g) => {
    g.get('scratch').get('r').i32(4).i32Mul().i32Add().set('mp');
    g.get('scratch').get('r').i32(DVP * 4).i32Mul().i32Add().set('op');
    g.get('out').get('r').i32(OS * 4).i32Mul().i32Add().set('yp');
    g.get('mp').f32Load(M_AT).f32(ROW_EMPTY).f32Lt().if(
      (t) => {
        for (let u = 0; u < DVO / 4; u++) t.get('yp').f32x4Const(0).v128Store(16 * u);
      },
      (t) => {
        t.f32(1).get('mp').f32Load(L_AT).f32Div().f32x4Splat().set('inv');
        t.forRange('c0', 0, DVO * 4, 16, (u) => {
          u.get('yp').get('c0').i32Add().get('op').get('c0').i32Add().v128Load().get('inv').f32x4Mul().v128Store();
        });
      },
    );
  });

  /** jlo, jhi: the 4-key groups of the tile from the first to the last that keeps a key in the strip's rows. */
  function emitKeyRange(g: FunctionBuilder): void {
    g.i32(BK).set('jlo').i32(0).set('jhi');
    g.get('tile').get('rs').i32(BK * 4).i32Mul().i32Add().set('tp');
    g.forRange('c0', 0, BK * 4, 16, (h) => {
      for (let r = 0; r < 4; r++) {
        h.get('tp').get('c0').i32Add().v128Load(r * BK * 4).f32x4Const(ROW_EMPTY).f32x4Gt();
        if (r > 0) h.v128Or();
      }
      h.v128AnyTrue().if((t) => {
        t.get('jhi').i32Eqz().if((u) => u.get('c0').i32(2).i32ShrU().set('jlo'));
        t.get('c0').i32(2).i32ShrU().i32(4).i32Add().set('jhi');
      });
    });
  }

  /** Scores of the strip at `qs` against the key block at `kp` into S (base-2 units). */
  function emitScores(g: FunctionBuilder, s: FullKernelShape, sAt: number, withTile: boolean): void {
    for (let half = 0; half < 2; half++) {
      g.forRange('jc', 'jlo', 'jhi', 4, (h) => {
        h.get('kp').get('jc').i32(KS * 4).i32Mul().i32Add().set('kc');
        h.get('qs').i32(half * 2 * QS * 4).i32Add().tee('qc').i32(DP * 4).i32Add().set('qe');
        for (let r = 0; r < 2; r++) for (let c = 0; c < 4; c++) h.f32x4Const(0).set(`a${r}${c}`);
        h.loop((l) => {
          l.get('qc').v128Load(0).set('q0');
          l.get('qc').v128Load(QS * 4).set('q1');
          for (let c = 0; c < 4; c++) {
            l.get('kc').v128Load(c * KS * 4).set(`k${c}`);
            for (let r = 0; r < 2; r++) l.get(`a${r}${c}`).get(`q${r}`).get(`k${c}`).f32x4Mul().f32x4Add().set(`a${r}${c}`);
          }
          l.get('kc').i32(16).i32Add().set('kc');
          l.get('qc').i32(16).i32Add().tee('qc').get('qe').i32LtS().brIf(0);
        });
        // reduce, transform, store: S[2 half + r][jc .. jc + 3]
        h.get('scratch').get('jc').i32(4).i32Mul().i32Add().set('sp');
        if (withTile) h.get('tile').get('rs').i32(BK * 4).i32Mul().i32Add().get('jc').i32(4).i32Mul().i32Add().set('tp');
        for (let r = 0; r < 2; r++) {
          const row = half * 2 + r;
          h.get('sp');
          emitTransposeReduce(h, 'add', [`a${r}0`, `a${r}1`, `a${r}2`, `a${r}3`], 'tr');
          if (s.softcap > 0) {
            // cap · tanh(y / cap) = cap - 2 cap / (e^(2y / cap) + 1), y = scale · s
            h.f32x4Const((2 * scale * Math.LOG2E) / s.softcap).f32x4Mul();
            emitExp2(h, 'cx', true);
            h.f32x4Const(1).f32x4Add().set('x');
            h.f32x4Const(s.softcap).f32x4Const(2 * s.softcap).get('x').f32x4Div().f32x4Sub();
            if (withTile) maskedByTile(h, row);
            h.f32x4Const(Math.LOG2E).f32x4Mul();
          } else if (withTile) {
            h.f32x4Const(scale).f32x4Mul();
            maskedByTile(h, row);
            h.f32x4Const(Math.LOG2E).f32x4Mul();
          } else {
            h.f32x4Const(scale * Math.LOG2E).f32x4Mul();
          }
          h.v128Store(sAt + row * BK * 4);
        }
      });
    }
  }

  /**
   * The scores on the stack plus the mask tile's row `row` (4 keys at tp), and MASKED where the tile masks: a masked
   * key's score is MASKED whatever it read (a NaN key plus the mask would be NaN, and its row with it).
   */
  function maskedByTile(h: FunctionBuilder, row: number): void {
    h.get('tp').v128Load(row * BK * 4).f32x4Add();
    h.f32x4Const(MASKED);
    h.get('tp').v128Load(row * BK * 4).f32x4Const(ROW_EMPTY).f32x4Gt();
    h.v128Bitselect();
  }

  /** Online-softmax update of the strip's 4 rows: S becomes P, m and l move, α per row in al0..al3. */
  function emitStripSoftmax(g: FunctionBuilder, _s: FullKernelShape, sAt: number, mAt: number, lAt: number): void {
    g.get('scratch').get('jlo').i32(4).i32Mul().i32Add().set('sp');
    for (let r = 0; r < 4; r++) g.get('sp').v128Load(sAt + r * BK * 4).set(`mx${r}`);
    g.get('jlo').i32(4).i32Add().i32(4).i32Mul().set('pc');
    g.get('jhi').i32(4).i32Mul().set('pe');
    g.forRange('c0', 'pc', 'pe', 16, (h) => {
      h.get('scratch').get('c0').i32Add().set('sp');
      for (let r = 0; r < 4; r++) h.get(`mx${r}`).get('sp').v128Load(sAt + r * BK * 4).f32x4Pmax().set(`mx${r}`);
    });
    g.get('scratch').get('rs').i32(4).i32Mul().i32Add().tee('mp').v128Load(mAt).tee('mold');
    emitTransposeReduce(g, 'max', ['mx0', 'mx1', 'mx2', 'mx3'], 'tr');
    g.f32x4Pmax().set('mnew');
    g.get('mp').get('mnew').v128Store(mAt);
    g.get('mold').get('mnew').f32x4Sub();
    emitExp2(g, 'ex');
    g.set('alpha');
    for (let r = 0; r < 4; r++) {
      emitSplatLane(g, 'alpha', r);
      g.set(`al${r}`);
      emitSplatLane(g, 'mnew', r);
      g.set('mr').f32x4Const(0).set('sum');
      g.get('jlo').i32(4).i32Mul().set('pc');
      g.forRange('c0', 'pc', 'pe', 16, (h) => {
        h.get('scratch').get('c0').i32Add().tee('sp');
        h.get('sp').v128Load(sAt + r * BK * 4).get('mr').f32x4Sub();
        emitExp2(h, 'ex');
        h.tee('x').v128Store(sAt + r * BK * 4);
        h.get('sum').get('x').f32x4Add().set('sum');
      });
      g.get('sum').set(`mx${r}`);
    }
    g.get('mp').get('mp').v128Load(lAt).get('alpha').f32x4Mul();
    emitTransposeReduce(g, 'add', ['mx0', 'mx1', 'mx2', 'mx3'], 'tr');
    g.f32x4Add().v128Store(lAt);
  }

  /** O[rs .. rs + 3] = α O + P V over the key block at `vp`. */
  function emitStripPV(g: FunctionBuilder, _s: FullKernelShape, sAt: number): void {
    g.forRange('dc', 0, DVP * 4, 32, (h) => {
      h.get('scratch').get('rs').i32(DVP * 4).i32Mul().i32Add().get('dc').i32Add().set('op');
      for (let r = 0; r < 4; r++) for (let c = 0; c < 2; c++) h.get('op').v128Load(r * DVP * 4 + c * 16).get(`al${r}`).f32x4Mul().set(`a${r}${c}`);
      h.get('vp').get('dc').i32Add().get('jlo').i32(VS * 4).i32Mul().i32Add().set('vc');
      h.get('scratch').get('jlo').i32(4).i32Mul().i32Add().set('pc');
      h.get('scratch').get('jhi').i32(4).i32Mul().i32Add().set('pe');
      h.loop((l) => {
        l.get('vc').v128Load(0).set('v0');
        l.get('vc').v128Load(16).set('v1');
        for (let r = 0; r < 4; r++) {
          l.get('pc').v128Load32Splat(sAt + r * BK * 4).set('ps');
          l.get(`a${r}0`).get('ps').get('v0').f32x4Mul().f32x4Add().set(`a${r}0`);
          l.get(`a${r}1`).get('ps').get('v1').f32x4Mul().f32x4Add().set(`a${r}1`);
        }
        l.get('vc').i32(VS * 4).i32Add().set('vc');
        l.get('pc').i32(4).i32Add().tee('pc').get('pe').i32LtS().brIf(0);
      });
      for (let r = 0; r < 4; r++) for (let c = 0; c < 2; c++) h.get('op').get(`a${r}${c}`).v128Store(r * DVP * 4 + c * 16);
    });
  }
}
