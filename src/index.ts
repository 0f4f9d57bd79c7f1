/** The public API, shared by the Node and browser entry points. */
export { Tensor, scope, scopeAsync, type DType } from './tensor/tensor.js';
export { tensor, uniform, normal, kaimingNormal, fans, Rng } from './tensor/create.js';
export { numel, broadcastShapes, formatShape, type Shape } from './tensor/shape.js';
export { noGrad, isGradEnabled } from './autograd/mode.js';
export { defineOp } from './autograd/function.js';
export { gpu, grid1d, type GpuRuntime, type GpuStats } from './gpu/encoder.js';
export { GpuError } from './gpu/device.js';
export * from './ops/elementwise.js';
export { sum, mean, max, sumTo } from './ops/reduce.js';
export { matmul, matmulKernel, type MatmulOptions } from './ops/matmul.js';
export { softmaxCrossEntropy, argmax, correctCount } from './ops/loss.js';
export { reshape, flatten } from './ops/view.js';
export { SGD, type SGDOptions } from './optim/sgd.js';
