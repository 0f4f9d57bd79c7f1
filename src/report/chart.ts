/**
 * A run's accuracy per epoch as a hand-written SVG line chart: one polyline per series (train, test, and test
 * after masking for pruned runs), the y axis fixed at 0–100 % so charts of different runs compare at a glance.
 * Deterministic: the same records give the same bytes.
 */
import type { EpochRecord } from '../train/trainer.js';

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const WIDTH = 640;
const HEIGHT = 380;
const LEFT = 60;
const RIGHT = 20;
const TOP = 56;
const BOTTOM = 50;

const SERIES = [
  { key: 'trainAccuracy', label: 'train accuracy', color: '#2b6cb0' },
  { key: 'testAccuracy', label: 'test accuracy', color: '#c05621' },
  { key: 'testAccuracyMasked', label: 'test accuracy after masking', color: '#2f855a' },
] as const;

/** The series every record has a number for, with their values. */
function seriesOf(records: readonly EpochRecord[]) {
  return SERIES.filter((s) => records.every((r) => typeof r[s.key] === 'number')).map((s) => ({
    ...s,
    values: records.map((r) => r[s.key] as number),
  }));
}

export function accuracyChart(title: string, records: readonly EpochRecord[]): string {
  const epochs = records.map((r) => r.epoch);
  const [first, last] = [epochs[0], epochs[epochs.length - 1]];
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  // A single epoch sits in the middle rather than dividing by a zero span.
  const x = (epoch: number) => LEFT + (last > first ? ((epoch - first) / (last - first)) * plotW : plotW / 2);
  const y = (accuracy: number) => TOP + (1 - Math.min(Math.max(accuracy, 0), 1)) * plotH;
  const f = (v: number) => v.toFixed(1);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${LEFT}" y="20" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (let t = 0; t <= 100; t += 20) {
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${f(y(t / 100))}" y2="${f(y(t / 100))}" stroke="#e2e2e2"/>`);
    out.push(`<text x="${LEFT - 6}" y="${f(y(t / 100) + 4)}" text-anchor="end" fill="#444">${t}</text>`);
  }
  const step = Math.max(1, Math.ceil(epochs.length / 15));
  epochs.forEach((epoch, i) => {
    if (i % step !== 0 && i !== epochs.length - 1) return;
    out.push(`<text x="${f(x(epoch))}" y="${TOP + plotH + 16}" text-anchor="middle" fill="#444">${epoch}</text>`);
  });
  out.push(
    `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${TOP + plotH}" y2="${TOP + plotH}" stroke="#222"/>`,
    `<line x1="${LEFT}" x2="${LEFT}" y1="${TOP}" y2="${TOP + plotH}" stroke="#222"/>`,
    `<text x="${LEFT + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">epoch</text>`,
    `<text transform="translate(16 ${TOP + plotH / 2}) rotate(-90)" text-anchor="middle">accuracy (%)</text>`,
  );
  seriesOf(records).forEach((s, i) => {
    const points = s.values.map((v, j) => `${f(x(epochs[j]))},${f(y(v))}`).join(' ');
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points}"><title>${escapeXml(s.label)}</title></polyline>`);
    const lx = LEFT + i * 190;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="38" y2="38" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="42">${escapeXml(s.label)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
