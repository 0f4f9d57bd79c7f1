/**
 * The speedup report as text: JSON (everything, samples included), a Markdown table per model and batch
 * size, and a hand-written SVG chart of real vs theoretical speedup per layer and end to end. Pure
 * functions of a SpeedupReport; the CLI writes the files.
 */
import type { BatchResult, ModelResult, RowResult, SpeedupReport } from './speedup.js';
import { escapeXml } from '../report/chart.js';

export function reportJson(report: SpeedupReport): string {
  return JSON.stringify(report, null, 1) + '\n';
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3));
const times = (v: number) => `${v.toFixed(2)}×`;
const mflop = (v: number) => (v / 1e6).toFixed(v >= 1e8 ? 0 : v >= 1e6 ? 2 : 4);

function timeCell(s: RowResult['dense']): string {
  return `${ms(s.ms.median)} (${ms(s.ms.p10)}–${ms(s.ms.p90)})`;
}

function row(r: RowResult, bold = false): string {
  const name = bold ? `**${r.name}**` : r.name;
  return (
    `| ${name} | ${mflop(r.dense.flops)} | ${mflop(r.compact.flops)} | ${timeCell(r.dense)} | ${timeCell(r.compact)} | ` +
    `${r.dense.gflops.toFixed(2)} | ${r.compact.gflops.toFixed(2)} | ${times(r.theoreticalSpeedup)} | ` +
    `${times(r.realSpeedup)} (${r.realSpeedupRange[0].toFixed(2)}–${r.realSpeedupRange[1].toFixed(2)}) |`
  );
}

function modelTitle(m: ModelResult): string {
  return m.timingOnly ? `${m.name} (timing only)` : m.name;
}

function batchTable(m: ModelResult, b: BatchResult): string[] {
  return [
    `### ${modelTitle(m)}, batch ${b.batch}`,
    '',
    '| layer | dense MFLOP | compact MFLOP | dense ms (p10–p90) | compact ms (p10–p90) | dense GFLOP/s | compact GFLOP/s | theoretical | real (p10–p90) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    row(b.endToEnd, true),
    `| sum of layers | | | ${ms(b.sumOfLayersMs.dense)} | ${ms(b.sumOfLayersMs.compact)} | | | | ${times(b.sumOfLayersMs.dense / b.sumOfLayersMs.compact)} |`,
    ...b.layers.map((r) => row(r)),
    '',
  ];
}

export function reportMarkdown(report: SpeedupReport): string {
  const load = report.machine.loadAverage;
  const lines = [
    '# Real vs theoretical speedup of the compact models',
    '',
    `${report.date} on ${report.machine.adapter}` +
      (report.machine.cpus ? ` (${report.machine.cpus}, ${report.machine.cores} cores)` : '') +
      (load ? `; load average ${load.start.map((v) => v.toFixed(2)).join(' ')} at the start${load.end ? `, ${load.end.map((v) => v.toFixed(2)).join(' ')} at the end` : ''}` : '') +
      (report.machine.otherProcessesCpu !== undefined
        ? `; other processes used ${(100 * report.machine.otherProcessesCpu).toFixed(1)} % of all cores' time during the run` +
          (report.machine.stolenCpu ? `, the hypervisor ${(100 * report.machine.stolenCpu).toFixed(1)} % (steal)` : '')
        : '') +
      '.',
    '',
    `Method: ${report.method}. Theoretical = dense FLOPs / compact FLOPs; real = the median over repeats of dense time / compact time (each repeat times both back to back), with the p10–p90 of the same ratios; ` +
      'so real is not the ratio of the two median times beside it. With few repeats, p10–p90 is close to the smallest and largest ratio.',
    '',
    '## Summary (end to end)',
    '',
    '| model | batch | repeats | dense ms (median) | compact ms (median) | theoretical | real (p10–p90) | real ÷ theoretical | compact model |',
    '|---|--:|--:|--:|--:|--:|--:|--:|---|',
    ...report.models.flatMap((m) =>
      m.batches.map((b) => {
        const e = b.endToEnd;
        return (
          `| ${m.name} | ${b.batch} | ${e.dense.ms.samples.length} | ${ms(e.dense.ms.median)} | ${ms(e.compact.ms.median)} | ${times(e.theoreticalSpeedup)} | ` +
          `${times(e.realSpeedup)} (${e.realSpeedupRange[0].toFixed(2)}–${e.realSpeedupRange[1].toFixed(2)}) | ` +
          `${((100 * e.realSpeedup) / e.theoreticalSpeedup).toFixed(0)} % | ` +
          `${m.timingOnly ? 'timing only (random weights, built from kept channel counts)' : 'compacted by prune/compact.ts'} |`
        );
      }),
    ),
    '',
  ];
  for (const m of report.models) {
    lines.push(`## ${modelTitle(m)}`, '', `Source: ${m.source}. Parameters ${m.parameters.dense} dense, ${m.parameters.compact} compact.`, '');
    for (const note of m.notes) lines.push(`- ${note}`);
    if (m.notes.length) lines.push('');
    for (const b of m.batches) lines.push(...batchTable(m, b));
  }
  return lines.join('\n');
}

const BAR = 9;
const GROUP = 2 * BAR + 6;
const PLOT_H = 220;
const TOP = 40;
const LEFT = 56;
const LABEL_H = 120;
const PANEL_H = TOP + PLOT_H + LABEL_H;

/** One panel: a pair of bars (theoretical, real with its p10–p90 whisker) per row, end to end first. */
function panel(m: ModelResult, b: BatchResult, y0: number, width: number): string[] {
  const rows = [b.endToEnd, ...b.layers];
  const top = Math.max(1.5, ...rows.flatMap((r) => [r.theoreticalSpeedup, r.realSpeedupRange[1], r.realSpeedup]).filter(Number.isFinite));
  const yMax = Math.ceil(top * 2) / 2;
  const y = (v: number) => y0 + TOP + PLOT_H * (1 - Math.min(Math.max(v, 0), yMax) / yMax);
  const out = [`<g class="panel" data-model="${escapeXml(m.name)}" data-batch="${b.batch}">`];
  out.push(`<text x="${LEFT}" y="${y0 + 22}" class="title">${escapeXml(`${modelTitle(m)}, batch ${b.batch}: real vs theoretical speedup (compact over dense)`)}</text>`);
  for (let t = 0; t <= yMax + 1e-9; t += yMax > 4 ? 1 : 0.5) {
    out.push(`<line x1="${LEFT}" x2="${width - 10}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" class="${t === 1 ? 'one' : 'grid'}"/>`);
    out.push(`<text x="${LEFT - 6}" y="${(y(t) + 4).toFixed(1)}" class="tick">${t.toFixed(1)}×</text>`);
  }
  rows.forEach((r, i) => {
    const x = LEFT + 8 + i * GROUP;
    const th = r.theoreticalSpeedup;
    const re = r.realSpeedup;
    out.push(`<rect class="theoretical" x="${x}" y="${y(th).toFixed(1)}" width="${BAR}" height="${(y(0) - y(th)).toFixed(1)}"><title>${escapeXml(`${r.name}: theoretical ${th.toFixed(3)}×`)}</title></rect>`);
    out.push(`<rect class="real" x="${x + BAR}" y="${y(re).toFixed(1)}" width="${BAR}" height="${(y(0) - y(re)).toFixed(1)}"><title>${escapeXml(`${r.name}: real ${re.toFixed(3)}× (p10–p90 ${r.realSpeedupRange[0].toFixed(2)}–${r.realSpeedupRange[1].toFixed(2)})`)}</title></rect>`);
    const cx = x + BAR * 1.5;
    out.push(`<line class="range" x1="${cx}" x2="${cx}" y1="${y(r.realSpeedupRange[0]).toFixed(1)}" y2="${y(r.realSpeedupRange[1]).toFixed(1)}"/>`);
    const lx = x + BAR;
    const ly = y0 + TOP + PLOT_H + 8;
    out.push(`<text class="${i === 0 ? 'label total' : 'label'}" transform="translate(${lx} ${ly}) rotate(-60)" x="0" y="0">${escapeXml(r.name)}</text>`);
  });
  out.push('</g>');
  return out;
}

/** One SVG with a panel per model and batch size. */
export function reportSvg(report: SpeedupReport): string {
  const panels = report.models.flatMap((m) => m.batches.map((b) => ({ m, b })));
  const maxRows = Math.max(1, ...panels.map(({ b }) => b.layers.length + 1));
  const width = LEFT + 20 + maxRows * GROUP;
  const legendH = 30;
  const height = legendH + panels.length * PANEL_H;
  const body = panels.flatMap(({ m, b }, i) => panel(m, b, legendH + i * PANEL_H, width));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    '<style>',
    '.theoretical{fill:#b0b0b0}.real{fill:#2b6cb0}.range{stroke:#111;stroke-width:1.2}.grid{stroke:#e2e2e2}',
    '.one{stroke:#c53030;stroke-dasharray:4 3}.tick{text-anchor:end;fill:#444}.label{text-anchor:end;fill:#222}',
    '.total{font-weight:bold}.title{font-size:13px;font-weight:bold}.legend-theoretical{fill:#b0b0b0}.legend-real{fill:#2b6cb0}',
    '</style>',
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<rect class="legend-theoretical" x="${LEFT}" y="10" width="12" height="12"/><text x="${LEFT + 16}" y="20">theoretical (FLOP ratio)</text>`,
    `<rect class="legend-real" x="${LEFT + 170}" y="10" width="12" height="12"/><text x="${LEFT + 186}" y="20">real (median time ratio; whisker p10–p90)</text>`,
    `<text x="${LEFT + 440}" y="20">${escapeXml(`${report.date}, ${report.machine.adapter}; dashed line: 1× (no speedup)`)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
