// The CPU executor: whole IR graphs (the common transformer op set, the indexing ops attnopt's lowerings
// emit, and attnopt::Attention through the generated kernels) without onnxruntime.

export { planGraph, DEFAULT_OPSET, UnsupportedOpsError, type GraphPlan, type PlanOptions, type PlannedNode, type UnsupportedNode } from './plan.js';
export { runGraph, type RunOptions, type NodeEvent } from './run.js';
export {
  type ExecDType,
  type ExecData,
  type ExecDataOf,
  type ExecTensor,
  EXEC_DTYPES,
  execTensor,
  allocTensor,
  fromIrTensor,
  fromFloats,
  toNumbers,
} from './tensor.js';
export { EXECUTOR_OPS } from './ops/index.js';
export type { OpKernel, OpContext, OpTable } from './kernel.js';
