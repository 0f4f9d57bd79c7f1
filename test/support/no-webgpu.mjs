// A Node --import hook: resolving the native `webgpu` package fails, as on a platform it does not ship for.
import { register } from 'node:module';
register('data:text/javascript,export async function resolve(s,c,n){ if (s === "webgpu") throw new Error("the webgpu module cannot load here"); return n(s,c); }');
