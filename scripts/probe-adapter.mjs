// Exits 0 when Dawn finds a real WebGPU adapter, 1 otherwise (also for Dawn's null backend, which the engine
// refuses: src/gpu/device.ts). Used by setup-system.sh.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
const info = adapter?.info ?? {};
const isNull = /null/i.test(info.description ?? '') || /null/i.test(info.vendor ?? '');
process.exit(adapter && !isNull ? 0 : 1);
