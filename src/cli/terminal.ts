/** Progress output for a terminal: the status line is rewritten in place; without a TTY it prints every few seconds. */
import type { ProgressSink } from '../train/progress.js';

export function terminalSink(stream: NodeJS.WriteStream = process.stderr, everyMs = 10_000): ProgressSink {
  let last = 0;
  let pending = false;
  return {
    status(line) {
      if (stream.isTTY) {
        stream.write(`\r\x1b[K${line}`);
        pending = true;
      } else if (Date.now() - last >= everyMs) {
        last = Date.now();
        stream.write(line + '\n');
      }
    },
    line(text) {
      if (pending) stream.write('\r\x1b[K');
      pending = false;
      console.log(text);
    },
  };
}
