// @attnopt/runtime-cpu: an ONNX interpreter over the IR. Runs whole graphs (the common transformer op set,
// the indexing ops attnopt's lowerings emit, and attnopt::Attention through backend-cpu's generated kernels)
// without onnxruntime. Public API.

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
export type { GuardEvent, OpKernel, OpContext, OpTable } from './kernel.js';
