// Errors a user can act on: each names the file, where in it, and what is wrong.

/** Bytes that are not a well-formed ModelProto (truncated, garbage, a field of the wrong wire type...). */
export class OnnxDecodeError extends Error {
  override readonly name = 'OnnxDecodeError';
  constructor(
    /** What is wrong, in words. */
    readonly problem: string,
    /** Message path, e.g. `ModelProto.graph.node[12].attribute[0]`. */
    readonly path: string,
    /** Byte offset in the input where the problem was found. */
    readonly offset: number,
    /** The file the bytes came from, when known. */
    readonly file?: string,
  ) {
    super(`${file === undefined ? '' : `${file}: `}${path} at byte ${offset}: ${problem}`);
  }
}

/** An external-data reference that cannot be honoured: escaping the model folder, past the file end... */
export class ExternalDataError extends Error {
  override readonly name = 'ExternalDataError';
  constructor(
    readonly problem: string,
    readonly modelFile: string | undefined,
    readonly tensorName: string | undefined,
    readonly location: string | undefined,
  ) {
    super(
      `${modelFile ?? '<model>'}: tensor '${tensorName ?? '<unnamed>'}'` +
        `${location === undefined ? '' : ` (external data location '${location}')`}: ${problem}`,
    );
  }
}

/** A message object that cannot be written: a value of the wrong type, too deep, or over protobuf's 2 GB. */
export class OnnxEncodeError extends Error {
  override readonly name = 'OnnxEncodeError';
  constructor(
    readonly problem: string,
    readonly path: string,
  ) {
    super(`${path}: ${problem}`);
  }
}
