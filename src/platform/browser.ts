/** Browser host: navigator.gpu, shaders fetched relative to the page. */
import type { Platform } from './platform.js';

export function browserPlatform(shaderBase = './shaders/'): Platform {
  return {
    name: 'browser',
    async requestAdapter(options) {
      if (!('gpu' in navigator)) {
        return null;
      }
      return navigator.gpu.requestAdapter(options);
    },
    async loadShader(family) {
      const response = await fetch(`${shaderBase}${family}.wgsl`);
      if (!response.ok) throw new Error(`cannot load shader ${family}.wgsl: HTTP ${response.status}`);
      return response.text();
    },
    missingAdapterHelp:
      'This browser gives no WebGPU adapter. Serve the page from http://127.0.0.1 or https (navigator.gpu needs a ' +
      'secure context); Chromium without a GPU needs the flag --enable-unsafe-webgpu.',
  };
}
