// The benchmark's outputs: a plain-text table, results JSON and an SVG bar chart of the ratios.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface Figure {
  name: string;
  unit: string;
  strata: number;
  /** measured in the same run; ratio = strata / reference.value */
  reference?: { name: string; value: number };
  better: 'higher' | 'lower';
  /** The goal from the issue: a bound on the ratio or on the value itself, in the `better` direction. */
  target?: { bound: number; on: 'ratio' | 'value' };
  detail?: string;
}

export interface Skipped {
  figure: string;
  reason: string;
}

export interface Machine {
  date: string;
  cores: number;
  cpu: string;
  memoryGB: number;
  kernel: string;
  node: string;
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
  };
}

export const ratioOf = (figure: Figure): number | undefined =>
  figure.reference ? figure.strata / figure.reference.value : undefined;

function formatValue(value: number, unit: string): string {
  return `${value.toFixed(unit === 's' ? 2 : 1)} ${unit}`;
}

/** Whether the figure meets its target (undefined: no target, or a ratio target without a reference). */
export function meetsTarget(figure: Figure): boolean | undefined {
  if (!figure.target) return undefined;
  const measured = figure.target.on === 'ratio' ? ratioOf(figure) : figure.strata;
  if (measured === undefined) return undefined;
  return figure.better === 'higher' ? measured >= figure.target.bound : measured <= figure.target.bound;
}

function formatTarget(figure: Figure): string {
  if (!figure.target) return '';
  const { bound, on } = figure.target;
  const sign = figure.better === 'higher' ? '>=' : '<=';
  const met = meetsTarget(figure);
  const bar = on === 'ratio' ? `${bound.toFixed(2)}x` : formatValue(bound, figure.unit);
  return `${sign} ${bar}${met === undefined ? '' : met ? ' ok' : ' MISSED'}`;
}

export function formatTable(machine: Machine, figures: Figure[], skipped: Skipped[]): string {
  const rows = [['figure', 'strata', 'reference', 'ratio', 'target', 'notes']];
  for (const f of figures) {
    const ratio = ratioOf(f);
    rows.push([
      f.name,
      formatValue(f.strata, f.unit),
      f.reference ? `${f.reference.name}: ${formatValue(f.reference.value, f.unit)}` : '-',
      ratio === undefined ? '-' : `${ratio.toFixed(2)}x (${f.better} is better)`,
      formatTarget(f),
      f.detail ?? '',
    ]);
  }
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));
  const lines = rows.map((row) => row.map((cell, col) => cell.padEnd(widths[col])).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const header = `strata benchmark, ${machine.date}: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGB} GB, Linux ${machine.kernel}, node ${machine.node}`;
  const skips = skipped.map((s) => `skipped: ${s.figure}: ${s.reason}`);
  return [header, '', ...lines, ...(skips.length ? ['', ...skips] : [])].join('\n');
}

export async function writeResults(dir: string, machine: Machine, figures: Figure[], skipped: Skipped[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'latest.json');
  const svg = path.join(dir, 'latest.svg');
  const withRatios = figures.map((f) => ({ ...f, ratio: ratioOf(f) }));
  await writeFile(json, `${JSON.stringify({ machine, figures: withRatios, skipped }, null, 2)}\n`);
  await writeFile(svg, ratioChart(machine, figures));
  return [json, svg];
}

/** Horizontal bars, one per figure that has a reference, with a line at 1.0 (parity) and a tick at
 * the figure's target ratio; a bar is green when the target is met, red when missed, blue without one. */
function ratioChart(machine: Machine, figures: Figure[]): string {
  const bars = figures.flatMap((f) => {
    const ratio = ratioOf(f);
    if (ratio === undefined) return [];
    const target = f.target?.on === 'ratio' ? f.target.bound : undefined;
    const goal = f.target ? `, target ${f.better === 'higher' ? '>=' : '<='} ${f.target.on === 'ratio' ? `${f.target.bound}x` : formatValue(f.target.bound, f.unit)}` : '';
    return [{ label: `${f.name} vs ${f.reference?.name}`, ratio, better: f.better, target, goal, met: meetsTarget(f) }];
  });
  const labelWidth = 470;
  const barArea = 300;
  const rowHeight = 26;
  const top = 40;
  const width = labelWidth + barArea + 300;
  const height = top + bars.length * rowHeight + 30;
  // Bars longer than CAP are cut there (and say so), so that one far-off figure does not flatten the rest.
  const CAP = 3;
  const scale = barArea / Math.min(CAP, Math.max(1.5, ...bars.map((b) => Math.max(b.ratio, b.target ?? 0))));
  const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const colour = (met: boolean | undefined) => (met === undefined ? '#4a78a8' : met ? '#3a8a4a' : '#b8433a');
  const rows = bars.map((b, i) => {
    const y = top + i * rowHeight;
    const length = Math.min(b.ratio, CAP) * scale;
    const parts = [
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${escape(b.label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${length.toFixed(1)}" height="${rowHeight - 8}" fill="${colour(b.met)}"/>`,
      `<text x="${(labelWidth + length + 6).toFixed(1)}" y="${y + 16}">${b.ratio.toFixed(2)}x${b.ratio > CAP ? ' (bar cut)' : ''} (${b.better} is better${escape(b.goal)})</text>`,
    ];
    if (b.target !== undefined) {
      const x = (labelWidth + b.target * scale).toFixed(1);
      parts.push(`<line x1="${x}" y1="${y + 1}" x2="${x}" y2="${y + rowHeight - 1}" stroke="black" stroke-width="2"/>`);
    }
    return parts.join('\n  ');
  });
  const parityX = (labelWidth + scale).toFixed(1);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
  <rect width="100%" height="100%" fill="white"/>
  <text x="10" y="22" font-size="15" font-weight="bold">strata / reference, ${escape(machine.date.slice(0, 10))}, ${machine.cores} cores, node ${escape(machine.node)} (black tick: target)</text>
  ${rows.join('\n  ')}
  <line x1="${parityX}" y1="${top}" x2="${parityX}" y2="${height - 24}" stroke="#444" stroke-dasharray="4 3"/>
  <text x="${parityX}" y="${height - 10}" text-anchor="middle">1.0</text>
</svg>
`;
}
