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
    get missingAdapterHelp() {
      if (!globalThis.isSecureContext) {
        return 'This page is not in a secure context, where browsers hide WebGPU: serve it from http://127.0.0.1, http://localhost or https.';
      }
      if (!('gpu' in navigator)) return 'This browser has no WebGPU (navigator.gpu): use a recent Chromium, Edge, Firefox or Safari with WebGPU enabled.';
      return 'This browser gives no WebGPU adapter: Chromium without a GPU needs the flag --enable-unsafe-webgpu.';
    },
  };
}
