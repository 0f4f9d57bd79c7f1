/** Whether ops record a graph for backward. */
let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

/** Runs `fn` without recording gradients (evaluation, optimizer updates, masking). */
export function noGrad<T>(fn: () => T): T {
  const previous = enabled;
  enabled = false;
  try {
    const result = fn();
    if (result instanceof Promise) {
      return result.finally(() => {
        enabled = previous;
      }) as T;
    }
    enabled = previous;
    return result;
  } catch (error) {
    enabled = previous;
    throw error;
  }
}
