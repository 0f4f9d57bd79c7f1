/** A small inline SVG line chart for the training loss (no chart library). */
const SVG = 'http://www.w3.org/2000/svg';

export class LossChart {
  readonly svg: SVGSVGElement;
  private readonly values: number[] = [];
  private readonly line: SVGPolylineElement;
  private readonly axes: SVGGElement;

  constructor(parent: HTMLElement, private readonly width = 480, private readonly height = 200) {
    this.svg = document.createElementNS(SVG, 'svg');
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.svg.setAttribute('width', String(width));
    this.svg.setAttribute('height', String(height));
    this.svg.setAttribute('role', 'img');
    this.svg.setAttribute('aria-label', 'training loss per step');
    this.svg.classList.add('chart');
    this.axes = document.createElementNS(SVG, 'g');
    this.line = document.createElementNS(SVG, 'polyline');
    this.line.setAttribute('fill', 'none');
    this.line.setAttribute('stroke', '#2563eb');
    this.line.setAttribute('stroke-width', '2');
    this.svg.append(this.axes, this.line);
    parent.append(this.svg);
    this.draw();
  }

  get points(): readonly number[] {
    return this.values;
  }

  clear(): void {
    this.values.length = 0;
    this.draw();
  }

  push(value: number): void {
    this.values.push(value);
    this.draw();
  }

  private draw(): void {
    const pad = { left: 44, right: 10, top: 10, bottom: 24 };
    const w = this.width - pad.left - pad.right;
    const h = this.height - pad.top - pad.bottom;
    const finite = this.values.filter(Number.isFinite);
    const hi = finite.length ? Math.max(...finite) : 1;
    const lo = finite.length ? Math.min(0, ...finite) : 0;
    const span = hi - lo || 1;
    const steps = Math.max(this.values.length - 1, 1);
    const x = (i: number) => pad.left + (w * i) / steps;
    const y = (v: number) => pad.top + h - (h * (v - lo)) / span;
    this.line.setAttribute('points', this.values.map((v, i) => `${x(i).toFixed(1)},${y(Number.isFinite(v) ? v : hi).toFixed(1)}`).join(' '));
    const text = (tx: number, ty: number, s: string, anchor = 'end') =>
      `<text x="${tx}" y="${ty}" font-size="11" text-anchor="${anchor}" fill="#555">${s}</text>`;
    this.axes.innerHTML =
      `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${pad.top + h}" stroke="#999"/>` +
      `<line x1="${pad.left}" y1="${pad.top + h}" x2="${pad.left + w}" y2="${pad.top + h}" stroke="#999"/>` +
      text(pad.left - 4, pad.top + 10, hi.toFixed(2)) +
      text(pad.left - 4, pad.top + h, lo.toFixed(2)) +
      text(pad.left + w, this.height - 6, `step ${this.values.length}`) +
      text(pad.left, this.height - 6, 'loss', 'start');
  }
}
