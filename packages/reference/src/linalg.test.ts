import { describe, expect, it } from 'vitest';
import { matmul, matrix, pinv } from './linalg.js';

describe('pinv', () => {
  it('inverts [[2, 0], [0, 4]] exactly and satisfies A A+ A = A on a rank-1 matrix', () => {
    expect([...pinv(matrix(2, 2, Float64Array.from([2, 0, 0, 4]))).data]).toEqual([0.5, 0, 0, 0.25]);
    // rank 1: A = u v^T with u = (1, 2, 3), v = (1, -1); A+ = A^T / (|u|^2 |v|^2) = A^T / 28
    const a = matrix(3, 2, Float64Array.from([1, -1, 2, -2, 3, -3]));
    const ap = pinv(a);
    [1, 2, 3, -1, -2, -3].forEach((x, k) => expect(ap.data[k]).toBeCloseTo(x / 28, 14));
    matmul(matmul(a, ap), a).data.forEach((x, k) => expect(x).toBeCloseTo(a.data[k]!, 13));
  });
});
