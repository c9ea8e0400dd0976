/**
 * nbtoolkit JupyterLab extension.
 *
 * - A left sidebar "Experiments": every experiment of the project store with its recent runs
 *   and verdict badges, polled every 5 s (only while visible) and on the refresh button.
 *   Reviewers' comments and ratings (`nbtk comment`) show under their run or experiment
 *   (./comments.ts).
 * - A left sidebar "Production" (./production.ts): registered models, aliases and the newest
 *   monitor result of each.
 * - Clicking a run opens its HTML report in a main-area tab. The HTML is fetched from the
 *   server extension and shown in an iframe with an empty `sandbox` attribute (no scripts,
 *   opaque origin): reports are static HTML.
 * - The command `nbtoolkit:insert-experiment-cell` inserts a code cell below the active cell.
 *   Kernels reach it through the comm target `nbtoolkit.insert_cell`, which this extension
 *   registers on every notebook kernel: `nbtk.widgets.ExperimentForm` opens a comm with
 *   `{"source": "<cell text>"}` and receives `{"inserted": true}` back.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { el, requestAPI } from './api';
import { CommentsLoader } from './comments';
import { ISignedResponse, PollingPanel } from './panel';
import { ProductionPanel } from './production';

const PLUGIN_ID = 'nbtoolkit:plugin';
const INSERT_COMMAND = 'nbtoolkit:insert-experiment-cell';
const OPEN_REPORT_COMMAND = 'nbtoolkit:open-report';
const REFRESH_COMMAND = 'nbtoolkit:refresh-experiments';
const COMM_TARGET = 'nbtoolkit.insert_cell';

const flaskIcon = new LabIcon({
  name: 'nbtoolkit:flask',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M9 2v2h1v5.2L4.3 19.1A2 2 0 0 0 6 22h12a2 2 0 0 0 ' +
    '1.7-2.9L14 9.2V4h1V2H9zm3 2v5.8l2.3 4.2H9.7L12 9.8V4z"/></svg>'
});

/** One run as returned by the server's listings. */
export interface IRunSummary {
  run_id: string;
  experiment: string;
  status: string;
  verdict: string | null;
  started: number | null;
  ended: number | null;
  kind: string;
}

/** One experiment with its recent runs. */
export interface IExperimentSummary {
  name: string;
  hypothesis: string;
  runs: number;
  recent: IRunSummary[];
}

interface IExperimentsResponse extends ISignedResponse {
  experiments: IExperimentSummary[];
  store: string | null;
}

function badgeLabel(run: IRunSummary): string {
  if (run.status === 'running') {
    return 'running';
  }
  if (run.status !== 'finished') {
    return run.status;
  }
  return run.verdict || 'none';
}

function timeAgo(epoch: number | null): string {
  if (!epoch) {
    return '';
  }
  const seconds = Math.max(0, Date.now() / 1000 - epoch);
  if (seconds < 60) {
    return `${Math.round(seconds)} s ago`;
  }
  if (seconds < 3600) {
    return `${Math.round(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.round(seconds / 3600)} h ago`;
  }
  return new Date(epoch * 1000).toISOString().slice(0, 10);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** An empty box the comments loader fills (`data-run-id` or `data-experiment`). */
function commentBox(key: 'runId' | 'experiment', value: string): HTMLElement {
  const box = el('div', 'nbtk-comments');
  box.dataset[key] = value;
  box.hidden = true;
  return box;
}

/** The "Experiments" sidebar. */
export class ExperimentsPanel extends PollingPanel<IExperimentsResponse> {
  constructor(openReport: (run: IRunSummary) => void) {
    super({
      id: 'nbtoolkit-experiments',
      title: 'Experiments',
      icon: flaskIcon,
      refreshLabel: 'Refresh experiments',
      endpoint: 'experiments?recent=5',
      noun: 'runs'
    });
    this._openReport = openReport;
    this._comments = new CommentsLoader(this.list);
  }

  protected statusText(data: IExperimentsResponse): string {
    const total = data.experiments.reduce((n, e) => n + e.runs, 0);
    return data.experiments.length
      ? `${plural(data.experiments.length, 'experiment')}, ${plural(total, 'run')}`
      : 'No runs yet: run an %%experiment cell.';
  }

  protected async render(data: IExperimentsResponse): Promise<void> {
    this._renderExperiments(data.experiments);
    await this._comments.load(true);
  }

  protected async unchanged(): Promise<void> {
    this._updateTimes();
    await this._comments.load(false);
  }

  private _renderExperiments(experiments: IExperimentSummary[]): void {
    this.list.replaceChildren();
    for (const exp of experiments) {
      const box = el('div', 'nbtk-experiment');
      box.dataset.experiment = exp.name;
      const name = el('div', 'nbtk-experiment-name');
      name.append(el('span', '', exp.name), el('span', 'nbtk-run-when', plural(exp.runs, 'run')));
      box.appendChild(name);
      if (exp.hypothesis) {
        const hyp = el('div', 'nbtk-experiment-hypothesis', exp.hypothesis);
        hyp.title = exp.hypothesis;
        box.appendChild(hyp);
      }
      box.appendChild(commentBox('experiment', exp.name));
      for (const run of exp.recent) {
        const row = el('div', 'nbtk-run');
        row.dataset.runId = run.run_id;
        row.title = `Open the report of run ${run.run_id}`;
        const label = badgeLabel(run);
        row.append(
          el('span', `nbtk-badge nbtk-badge-${label.replace(/[^a-z_]/g, '')}`, label),
          el('span', 'nbtk-run-id', run.run_id.slice(0, 8))
        );
        const when = el('span', 'nbtk-run-when', timeAgo(run.started));
        when.dataset.started = String(run.started ?? '');
        row.appendChild(when);
        row.tabIndex = 0;
        row.setAttribute('role', 'button');
        row.addEventListener('click', () => this._openReport(run));
        row.addEventListener('keydown', event => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            this._openReport(run);
          }
        });
        box.append(row, commentBox('runId', run.run_id));
      }
      this.list.appendChild(box);
    }
  }

  private _updateTimes(): void {
    this.list.querySelectorAll<HTMLElement>('.nbtk-run-when[data-started]').forEach(node => {
      const started = Number(node.dataset.started);
      if (started) {
        node.textContent = timeAgo(started);
      }
    });
  }

  private _openReport: (run: IRunSummary) => void;
  private _comments: CommentsLoader;
}

/** A run's static HTML report in a script-less sandboxed iframe. */
export class ReportView extends Widget {
  constructor(runId: string) {
    super();
    this.addClass('nbtk-report');
    this.runId = runId;
    this._frame = document.createElement('iframe');
    this._frame.setAttribute('sandbox', ''); // no scripts, no same-origin access
    this._frame.setAttribute('referrerpolicy', 'no-referrer');
    this._frame.title = `Report of run ${runId}`;
    this._error = el('div', 'nbtk-report-error');
    this._error.hidden = true;
    this.node.append(this._error, this._frame);
  }

  /** (Re)load the report; the server regenerates it when the run changed. */
  async load(): Promise<void> {
    try {
      const response = await requestAPI(`runs/${encodeURIComponent(this.runId)}/report`);
      this._frame.srcdoc = await response.text();
      this._error.hidden = true;
      this._frame.hidden = false;
      this.node.dataset.loaded = 'true';
    } catch (error) {
      this._error.textContent = `Could not load the report: ${(error as Error).message}`;
      this._error.hidden = false;
      this._frame.hidden = true;
      this.node.dataset.loaded = 'error';
    }
  }

  readonly runId: string;
  private _frame: HTMLIFrameElement;
  private _error: HTMLElement;
}

function insertCell(panel: NotebookPanel, source: string): void {
  const notebook = panel.content;
  NotebookActions.insertBelow(notebook);
  const cell = notebook.activeCell;
  if (cell) {
    cell.model.sharedModel.setSource(source);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Experiments sidebar, run reports and ExperimentForm cell insertion for nbtoolkit.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null
  ) => {
    const reports = new Map<string, MainAreaWidget<ReportView>>();

    app.commands.addCommand(OPEN_REPORT_COMMAND, {
      label: 'Open nbtoolkit run report',
      execute: async args => {
        const runId = String(args.runId ?? '');
        const label = String(args.label ?? runId.slice(0, 8));
        const existing = reports.get(runId);
        if (existing && !existing.isDisposed) {
          app.shell.activateById(existing.id);
          await existing.content.load(); // the run may have changed (approved, finished)
          return existing.id;
        }
        const view = new ReportView(runId);
        const widget = new MainAreaWidget({ content: view });
        widget.id = `nbtoolkit-report-${runId}`;
        widget.title.label = `Report ${label}`;
        widget.title.icon = flaskIcon;
        widget.title.closable = true;
        widget.addClass('nbtk-report-tab');
        reports.set(runId, widget);
        widget.disposed.connect(() => reports.delete(runId));
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        await view.load();
        return widget.id;
      }
    });

    const panel = new ExperimentsPanel(run =>
      void app.commands.execute(OPEN_REPORT_COMMAND, {
        runId: run.run_id,
        label: `${run.experiment} ${run.run_id.slice(0, 8)}`
      })
    );
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'nbtoolkit-experiments');
    }

    const production = new ProductionPanel();
    app.shell.add(production, 'left', { rank: 601 });
    if (restorer) {
      restorer.add(production, 'nbtoolkit-production');
    }

    app.commands.addCommand(REFRESH_COMMAND, {
      label: 'Refresh nbtoolkit experiments',
      execute: () => panel.refresh(true)
    });

    app.commands.addCommand(INSERT_COMMAND, {
      label: 'Insert %%experiment cell below',
      execute: args => {
        const source = String(args.source ?? '');
        const target =
          (args.panelId && tracker.find(p => p.id === args.panelId)) || tracker.currentWidget;
        if (!target) {
          return false;
        }
        insertCell(target, source);
        return true;
      }
    });

    const registered = new WeakSet<Kernel.IKernelConnection>();
    const watch = (nbPanel: NotebookPanel): void => {
      const register = (): void => {
        const kernel = nbPanel.sessionContext.session?.kernel;
        if (!kernel || registered.has(kernel)) {
          return;
        }
        registered.add(kernel);
        kernel.registerCommTarget(COMM_TARGET, async (comm, msg) => {
          const data = msg.content.data as { source?: unknown };
          const source = typeof data.source === 'string' ? data.source : '';
          let inserted = false;
          if (source) {
            inserted = Boolean(
              await app.commands.execute(INSERT_COMMAND, { source, panelId: nbPanel.id })
            );
          }
          comm.send({ inserted });
          comm.close();
          if (inserted) {
            void panel.refresh(false);
          }
        });
      };
      nbPanel.sessionContext.kernelChanged.connect(register);
      void nbPanel.sessionContext.ready.then(register);
      register();
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, nbPanel) => watch(nbPanel));
  }
};

export default plugin;
