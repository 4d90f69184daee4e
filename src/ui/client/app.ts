/**
 * The web UI's only client code: the runs chart (uPlot, bundled: no network), live progress of a
 * job over server-sent events, and nothing else. Every page works without it, less the live parts.
 */
import uPlot from 'uplot';

interface ChartData {
  t: number[];
  series: Record<'members' | 'added' | 'removed' | 'changed' | 'invalid' | 'rejected', number[]>;
}

const SERIES: { key: keyof ChartData['series']; label: string; stroke: string; axis: 'left' | 'right' }[] = [
  { key: 'members', label: 'segment rows', stroke: '#1b1f24', axis: 'left' },
  { key: 'added', label: 'added', stroke: '#116329', axis: 'right' },
  { key: 'removed', label: 'removed', stroke: '#a40e26', axis: 'right' },
  { key: 'changed', label: 'changed', stroke: '#0a58ca', axis: 'right' },
  { key: 'invalid', label: 'invalid', stroke: '#7d4e00', axis: 'right' },
  { key: 'rejected', label: 'rejected', stroke: '#6f42c1', axis: 'right' },
];

function drawChart(): void {
  const holder = document.getElementById('runs-chart');
  const source = document.getElementById('runs-data');
  if (!holder || !source?.textContent) return;
  const data = JSON.parse(source.textContent) as ChartData;
  if (data.t.length === 0) return;
  const width = Math.max(320, Math.min(holder.clientWidth || 900, 1100));
  new uPlot(
    {
      width,
      height: 260,
      scales: { x: { time: true }, count: {} },
      axes: [{}, { label: 'rows' }, { scale: 'count', side: 1, label: 'per run', grid: { show: false } }],
      series: [
        {},
        ...SERIES.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: s.key === 'members' ? 2 : 1.5,
          points: { show: data.t.length < 40 },
          ...(s.axis === 'right' ? { scale: 'count' } : {}),
        })),
      ],
    },
    [data.t, ...SERIES.map((s) => data.series[s.key])],
    holder,
  );
}

interface JobMessage {
  state: 'running' | 'finished';
  step: string;
  progress: { phase: string; done: number; total: number } | null;
}

function followJob(): void {
  const section = document.querySelector<HTMLElement>('section.job[data-job]');
  if (!section || section.dataset['state'] !== 'running') return;
  const id = section.dataset['job']!;
  const bar = document.getElementById('job-progress') as HTMLProgressElement | null;
  const text = section.querySelector<HTMLElement>('[data-field="progress-text"]');
  const step = section.querySelector<HTMLElement>('[data-field="step"]');
  const events = new EventSource(`/jobs/${encodeURIComponent(id)}/events`);
  events.addEventListener('progress', (event) => {
    const job = JSON.parse((event as MessageEvent<string>).data) as JobMessage;
    if (step) step.textContent = job.step;
    const p = job.progress;
    if (p && bar) {
      bar.max = Math.max(1, p.total);
      bar.value = Math.min(p.done, bar.max);
    }
    if (p && text)
      text.textContent = `${p.done.toLocaleString('en-US')} of ${p.total.toLocaleString('en-US')} members (${p.phase})`;
  });
  events.addEventListener('done', () => {
    events.close();
    // The server renders the result; the page shows it as a reload would.
    window.location.reload();
  });
}

document.addEventListener('DOMContentLoaded', () => {
  drawChart();
  followJob();
});
