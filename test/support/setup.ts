// Every test file gets the GPU before its tests run. A missing adapter fails the file with the
// engine's install message: tests never skip for want of a device.
import { beforeAll } from 'vitest';
import { init } from '../../src/node.js';

beforeAll(async () => {
  await init();
});
