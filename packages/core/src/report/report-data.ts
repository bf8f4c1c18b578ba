// ReportData: everything the HTML report shows, as plain JSON-serializable data (numbers, strings, arrays;
// a number the JSON cannot hold, NaN or Infinity, is null). renderReport draws it; other tools may read it.

/** One site's row of the table: the same fields and numbers as `attnopt optimize --json` prints for it. */
export interface ReportRow {
  readonly id: string;
  readonly chosen: string;
  readonly exact: boolean;
  /** exact, guarded (the bound holds on every input, checked at run time) or statistical (calibration data only). */
  readonly guarantee?: 'exact' | 'guarded' | 'statistical';
  /** Guarded sites: the predicted fraction of rows recomputed densely, from the calibration data. */
  readonly fallbackRate?: number;
  readonly bound: number | null;
  readonly measuredError: number | null;
  readonly flopsBefore: number | null;
  readonly flopsAfter: number | null;
  readonly reason?: string;
}

/** What recognition found at a site (as `attnopt inspect` reports it) and what mask analysis proved. */
export interface ReportFound {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly scale: number;
  /** The spec recognition gave the site. */
  readonly mask: string;
  /** The spec after mask analysis (what sparsify restricts every form to). */
  readonly proven: string;
  readonly onnxNodes: readonly string[];
  /** The value feeding the site's bias or boolean mask, or null. */
  readonly bias: string | null;
}

/** One form sparsify tried at the site (its TriedForm, non-finite numbers as null). */
export interface ReportTriedForm {
  readonly spec: string;
  readonly certified: boolean;
  readonly bound: number | null;
  readonly measuredError: number | null;
  readonly maxDroppedMass: number | null;
  readonly flops: number | null;
  /** Predicted seconds on the target. */
  readonly time: number | null;
  readonly accepted: boolean;
  readonly reason: string;
}

/**
 * Heatmaps of one site on the calibration data, binned to rows x cols (query bins x key bins). Bin r of n
 * positions holds [floor(r n / bins), floor((r + 1) n / bins)). Maps are row-major, rows * cols values.
 */
export interface ReportHeatmaps {
  readonly nq: number;
  readonly nk: number;
  readonly rows: number;
  readonly cols: number;
  /** Query rows evaluated for the attention mass (every `rowStride`-th row, from row 0). */
  readonly rowStride: number;
  /** Samples x batch entries the mass is averaged over. */
  readonly averagedOver: number;
  /** Per head shown: mean softmax probability per (query bin, key bin), over the evaluated rows. */
  readonly heads: readonly { readonly head: number; readonly mass: readonly number[] }[];
  /**
   * Fraction of the (query, key) pairs of each bin that the chosen form keeps: one map shared by every head
   * (one index spec for the site), or one per head shown (head groups; data-dependent specs, resolved on that
   * head's first sample). An entry is null where the head's form is low-rank (no key set); keep is null when
   * the chosen form could not be read.
   */
  readonly keep: readonly (readonly number[] | null)[] | null;
  /** Heads of the site not shown (heatmaps are capped per site). */
  readonly headsOmitted: number;
  readonly note?: string;
}

/** Cost-model figures over sequence length (batch 1, nq = nk = n) for a spec. */
export interface ReportCostSeries {
  readonly label: string;
  readonly spec: string;
  /** FLOPs per n, null where the cost model cannot say (a data-dependent form nested in a combination). */
  readonly flops: readonly (number | null)[];
  /** Predicted milliseconds per n on the target. */
  readonly ms: readonly (number | null)[];
}

export interface ReportCostCurve {
  readonly n: readonly number[];
  readonly series: readonly ReportCostSeries[];
}

export interface ReportSite {
  readonly row: ReportRow;
  /** null when a fresh recognition of the model has no site of this id. */
  readonly found: ReportFound | null;
  readonly tried: readonly ReportTriedForm[];
  readonly heatmaps: ReportHeatmaps | null;
  readonly costCurve: ReportCostCurve;
  /** Why the site has no heatmaps, when it has none. */
  readonly skipped?: string;
}

/** How one model output of the optimized model compares with the original's (from verify). */
export interface ReportOutputAgreement {
  readonly name: string;
  readonly maxAbsError: number | null;
  readonly top1Agreement: number | null;
  readonly meanKL: number | null;
  readonly meanCosine: number | null;
}

/** One point of the trade-off curve: optimize at an error budget, then verify against the original. */
export interface ReportTradeoffPoint {
  readonly budget: number;
  /** Sites that left their exact spec. */
  readonly sitesChanged: number;
  /** Sum of flopsBefore / sum of flopsAfter over sites with known FLOPs (cost model at the calibration length). */
  readonly modeledSpeedup: number | null;
  /** msOriginal / msOptimized measured by verify in onnxruntime. */
  readonly measuredSpeedup: number | null;
  readonly msOriginal: number | null;
  readonly msOptimized: number | null;
  /** The largest site bound the optimized model certifies. */
  readonly certified: number | null;
  readonly withinCertified: boolean | null;
  readonly outputs: readonly ReportOutputAgreement[];
  /** Chosen spec per site id. */
  readonly chosen: Readonly<Record<string, string>>;
  /**
   * Per guarded site (`site<k>`, or `site<k>.heads<a>-<b>` for a head group): the share of (batch, head, row)
   * triples its run-time certificate sent to the dense fallback on the verify inputs (onnxruntime).
   */
  readonly guardFallback?: Readonly<Record<string, number>>;
}

export interface ReportData {
  readonly format: 'attnopt-report/1';
  readonly model: string;
  readonly options: {
    readonly maxError: number;
    readonly seqLen: number;
    readonly seed: number;
    readonly target: string;
    readonly calibrationSamples: number;
    readonly verifySamples: number;
  };
  readonly summary: {
    readonly sites: number;
    readonly sitesChanged: number;
    readonly flopsBefore: number | null;
    readonly flopsAfter: number | null;
    readonly largestBound: number | null;
  };
  readonly sites: readonly ReportSite[];
  /** Whole-model attention cost (sum over sites) over sequence length. */
  readonly costCurve: ReportCostCurve;
  readonly tradeoff: readonly ReportTradeoffPoint[];
  readonly notes: readonly string[];
}

/** A number as JSON holds it: NaN and infinities become null. */
export const finiteOrNull = (x: number | null | undefined): number | null => (x !== null && x !== undefined && Number.isFinite(x) ? x : null);
