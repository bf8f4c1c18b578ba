import { importOnnx } from '@attnopt/onnx';
import { recognizePass } from '@attnopt/passes';
import { printGraph, isAttention } from '@attnopt/ir';
const m = importOnnx(process.argv[2]!);
recognizePass().run(m.graph);
console.log(printGraph(m.graph).split('\n').filter((l) => !l.includes('= tensor') ).slice(0, 200).join('\n'));
