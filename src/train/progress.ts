/** A one-line progress display: step, loss, accuracy, images/s and ETA. */
export interface ProgressSink {
  /** Overwrites the current status line (a terminal) or prints it now and then (a log file). */
  status(line: string): void;
  /** Prints a permanent line. */
  line(text: string): void;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function progressBar(done: number, total: number, width = 20): string {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return '[' + '#'.repeat(filled) + '.'.repeat(width - filled) + ']';
}

/** A sink that writes to console.log only (no carriage returns): for browsers and tests. */
export const consoleSink: ProgressSink = {
  status: () => {},
  line: (text) => console.log(text),
};
