// Exits 0 when Dawn finds a real (non-null) WebGPU adapter, 1 otherwise. Used by setup-system.sh.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
process.exit(adapter ? 0 : 1);
