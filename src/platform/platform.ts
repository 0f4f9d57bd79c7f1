/** What the engine needs from its host (Node or a browser page): a WebGPU entry point and shader sources. */
export interface Platform {
  readonly name: 'node' | 'browser';
  /** navigator.gpu in a page; Dawn's `create()` in Node. */
  requestAdapter(options?: GPURequestAdapterOptions): Promise<GPUAdapter | null>;
  /** The WGSL source of `shaders/<family>.wgsl`. */
  loadShader(family: string): Promise<string>;
  /** Said when no adapter is found: what to install or which flag to pass. */
  readonly missingAdapterHelp: string;
  /** Lets the host drop its WebGPU instance so the process can exit. */
  release?(): void;
}
