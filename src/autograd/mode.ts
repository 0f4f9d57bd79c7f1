/** Whether ops record a graph for backward. */
let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

/**
 * Runs `fn` without recording gradients (evaluation, optimizer updates, masking). Synchronous only: across an
 * await, recording would stay off for whatever else runs meanwhile; record here, then await outside.
 */
export function noGrad<T>(fn: () => T): T {
  const previous = enabled;
  enabled = false;
  let result: T;
  try {
    result = fn();
  } finally {
    enabled = previous;
  }
  if (result instanceof Promise) {
    throw new Error('noGrad() takes a synchronous function: gradient recording would stay off across its awaits; record inside it and await outside');
  }
  return result;
}
