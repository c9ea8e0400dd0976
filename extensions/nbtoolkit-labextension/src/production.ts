/**
 * The "Production" sidebar: every registered model with its aliases, the newest alias move,
 * the run behind the production version and the newest `nbtk monitor` result -- traffic, error
 * rate, latency p95/p99, measured and estimated ("est.") quality, the worst-slice gap, drifted
 * features and an SLA badge, formatted as the monitor dashboard formats them.
 *
 * Data: `GET /nbtoolkit/api/production?live=1`, polled by {@link PollingPanel} (./panel.ts) while
 * the panel is visible; the panel re-renders only when the answer's `signature` changed. With
 * `live=1` a model that answered requests in the last hour shows numbers computed now from the
 * store's prediction log ("live"); one without recent traffic its newest recorded monitor run. All text goes through
 * `textContent` (model names, reasons and descriptions are user text).
 */
import { LabIcon } from '@jupyterlab/ui-components';

import { el, fmtNumber } from './api';
import { commentNode, IComment } from './comments';
import { ISignedResponse, PollingPanel } from './panel';

/** the quality metric the dashboard puts first, in this order of preference */
const PREFERRED_METRICS = ['roc_auc', 'accuracy', 'rmse', 'mae'];

const gaugeIcon = new LabIcon({
  name: 'nbtoolkit:gauge',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M12 4a10 10 0 0 0-8.66 15h17.32A10 10 0 0 0 12 4zm0 ' +
    '2a8 8 0 0 1 7.4 11H4.6A8 8 0 0 1 12 6zm4.2 2.4-5.1 5.3a1.5 1.5 0 1 0 2 1.6l3.8-6.4z"/></svg>'
});

interface IMetricValue {
  value: number | null;
  low: number | null;
  high: number | null;
  n: number;
  estimated: boolean;
}

interface ISlice {
  column: string;
  metric: string;
  worst: string | null;
  gap: number | null;
}

interface IVersionReport {
  version: string;
  traffic: {
    rows: number;
    throughput_rps: number | null;
    error_rate: number | null;
    latency_p95_ms: number | null;
    latency_p99_ms: number | null;
  };
  measured: Record<string, IMetricValue>;
  estimated: Record<string, IMetricValue>;
  slices: ISlice[];
  sla: { ok: boolean } | null;
}

interface IMonitor {
  ok: boolean;
  window_seconds: number;
  breaches: { text: string }[];
  overall: IVersionReport[];
  drift_overall: { feature: string; drifted: boolean; psi: number | null }[];
  run_id: string | null;
  recorded: number | null;
  live?: boolean;
}

/** One model as the server describes it. */
export interface IProductionModel {
  model: string;
  versions: string[];
  aliases: Record<string, string>;
  last_move: {
    alias: string;
    from_version: string | null;
    to_version: string;
    action: string;
    by: string;
    reason: string;
  } | null;
  production: {
    version: string;
    run_id: string;
    experiment: string | null;
    hypothesis: string;
    description: string;
    comments: IComment[];
  } | null;
  monitor: IMonitor | null;
}

interface IProductionResponse extends ISignedResponse {
  models: IProductionModel[];
}

function qualityMetric(report: IVersionReport): string | null {
  const names = [...Object.keys(report.measured), ...Object.keys(report.estimated)];
  return PREFERRED_METRICS.find(m => names.includes(m)) ?? names[0] ?? null;
}

function qualityText(q: IMetricValue | undefined): string {
  if (!q) {
    return '—';
  }
  const interval = q.low !== null && q.high !== null ? ` [${fmtNumber(q.low)}, ${fmtNumber(q.high)}]` : '';
  return `${fmtNumber(q.value)}${interval}`;
}

/** A `label: value` line with `data-metric` for tests and styling. */
function stat(metric: string, label: string, value: string, estimated = false): HTMLElement {
  const row = el('div', 'nbtk-prod-stat');
  row.dataset.metric = metric;
  row.append(el('span', 'nbtk-prod-label', label), el('span', 'nbtk-prod-value', value));
  if (estimated) {
    const mark = el('span', 'nbtk-prod-est', 'est.');
    mark.title = 'Confidence-based performance estimate: no labels yet';
    row.appendChild(mark);
  }
  return row;
}

function worstGap(report: IVersionReport): ISlice | null {
  let worst: ISlice | null = null;
  for (const s of report.slices) {
    if (s.gap !== null && (worst === null || (worst.gap ?? 0) < s.gap)) {
      worst = s;
    }
  }
  return worst;
}

function versionBlock(report: IVersionReport, aliases: Record<string, string>): HTMLElement {
  const box = el('div', 'nbtk-prod-version');
  box.dataset.version = report.version;
  const names = Object.keys(aliases).filter(a => aliases[a] === report.version).sort();
  const head = el('div', 'nbtk-prod-version-head', report.version);
  if (names.length) {
    head.appendChild(el('span', 'nbtk-prod-aliases', ` (${names.join(', ')})`));
  }
  box.appendChild(head);
  const t = report.traffic;
  box.append(
    stat('rows', 'traffic', `${t.rows} rows, ${fmtNumber(t.throughput_rps)} rows/s`),
    stat('error_rate', 'error rate', fmtNumber(t.error_rate)),
    stat('latency_p95_ms', 'p95 ms', fmtNumber(t.latency_p95_ms)),
    stat('latency_p99_ms', 'p99 ms', fmtNumber(t.latency_p99_ms))
  );
  const metric = qualityMetric(report);
  if (metric) {
    box.append(
      stat(`measured.${metric}`, `${metric} measured`, qualityText(report.measured[metric])),
      stat(`estimated.${metric}`, `${metric}`, qualityText(report.estimated[metric]), true)
    );
  }
  const gap = worstGap(report);
  box.appendChild(
    gap
      ? stat('slice_gap', 'worst slice', `${gap.metric} ${gap.column}=${gap.worst ?? '?'}, gap ${fmtNumber(gap.gap)}`)
      : stat('slice_gap', 'worst slice', '—')
  );
  return box;
}

function monitorBlock(model: IProductionModel): HTMLElement {
  const box = el('div', 'nbtk-prod-monitor');
  const monitor = model.monitor;
  if (!monitor) {
    box.appendChild(el('div', 'nbtk-prod-muted', `No monitor run yet: nbtk monitor ${model.model}`));
    return box;
  }
  for (const report of monitor.overall) {
    box.appendChild(versionBlock(report, model.aliases));
  }
  const drifted = monitor.drift_overall.filter(f => f.drifted).map(f => f.feature);
  box.appendChild(
    stat(
      'drift',
      'drifted',
      monitor.drift_overall.length ? drifted.join(', ') || 'none' : 'not computed (no reference)'
    )
  );
  if (monitor.breaches.length) {
    const list = el('ul', 'nbtk-prod-breaches');
    for (const b of monitor.breaches) {
      list.appendChild(el('li', '', b.text));
    }
    box.appendChild(list);
  }
  if (monitor.live) {
    const minutes = Math.round(monitor.window_seconds / 60);
    box.appendChild(
      el('div', 'nbtk-prod-muted nbtk-prod-live', `live: last ${minutes} min of the prediction log`)
    );
  } else if (monitor.run_id) {
    box.appendChild(el('div', 'nbtk-prod-muted nbtk-prod-run', `monitor run ${monitor.run_id.slice(0, 8)}`));
  }
  return box;
}

function modelBlock(model: IProductionModel): HTMLElement {
  const box = el('div', 'nbtk-prod-model');
  box.dataset.model = model.model;
  const head = el('div', 'nbtk-experiment-name');
  head.appendChild(el('span', 'nbtk-prod-name', model.model));
  const monitor = model.monitor;
  const state = !monitor ? 'none' : monitor.ok ? 'ok' : 'breach';
  const badge = el(
    'span',
    `nbtk-badge nbtk-prod-sla nbtk-prod-sla-${state}`,
    !monitor ? 'no monitor' : monitor.ok ? 'SLA ok' : `SLA breach (${monitor.breaches.length})`
  );
  badge.dataset.state = state;
  head.appendChild(badge);
  box.appendChild(head);
  const aliases = Object.entries(model.aliases)
    .sort()
    .map(([a, v]) => `${a} → ${v}`)
    .join(', ');
  box.appendChild(el('div', 'nbtk-prod-alias-list', aliases || `no aliases (${model.versions.length} versions)`));
  const prod = model.production;
  if (prod) {
    const text = prod.description || prod.hypothesis;
    const line = el('div', 'nbtk-prod-description', text ? `${prod.experiment ?? '?'}: ${text}` : prod.experiment ?? '');
    line.title = text;
    box.appendChild(line);
    if (prod.comments.length) {
      const comments = el('div', 'nbtk-comments nbtk-prod-comments');
      comments.dataset.version = prod.version;
      comments.replaceChildren(...prod.comments.map(commentNode));
      box.appendChild(comments);
    }
  }
  const move = model.last_move;
  if (move) {
    const from = move.from_version ? `${move.from_version} → ` : '';
    const line = el(
      'div',
      'nbtk-prod-move',
      `${move.action} ${move.alias}: ${from}${move.to_version} by ${move.by}${move.reason ? ` (${move.reason})` : ''}`
    );
    line.title = move.reason;
    box.appendChild(line);
  }
  box.appendChild(monitorBlock(model));
  return box;
}

/** The "Production" sidebar. */
export class ProductionPanel extends PollingPanel<IProductionResponse> {
  constructor() {
    super({
      id: 'nbtoolkit-production',
      title: 'Production',
      icon: gaugeIcon,
      refreshLabel: 'Refresh production models',
      endpoint: 'production?live=1',
      noun: 'models'
    });
    this.addClass('nbtk-production');
  }

  protected statusText(data: IProductionResponse): string {
    const breaches = data.models.filter(m => m.monitor && !m.monitor.ok).length;
    return data.models.length
      ? `${data.models.length} model${data.models.length === 1 ? '' : 's'}` +
          (breaches ? `, ${breaches} with an SLA breach` : '')
      : 'No registered models yet: nbtk export a run.';
  }

  protected render(data: IProductionResponse): void {
    this.list.replaceChildren(...data.models.map(modelBlock));
    this.node.dataset.signature = data.signature;
  }
}
