/**
 * The skeleton every nbtoolkit sidebar shares: a header with the title and a refresh button,
 * a status line and a list, polled every few seconds while the panel is visible (and when it
 * is shown). Each answer of the server carries a `signature`; the list is rebuilt only when
 * it changed or the user pressed refresh. Subclasses name their endpoint and render the data.
 */
import { LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { el, requestAPI } from './api';

const POLL_MS = 5000;

/** An answer of the server extension that a polling panel can compare by signature. */
export interface ISignedResponse {
  signature: string;
}

/** What a polling panel shows and where its data comes from. */
export interface IPollingPanelOptions {
  /** the widget id, also the layout restorer's key */
  id: string;
  /** the header title and the tab caption */
  title: string;
  icon: LabIcon;
  /** the refresh button's aria-label */
  refreshLabel: string;
  /** the API path under `/nbtoolkit/api/` */
  endpoint: string;
  /** what failed to load, e.g. `runs` in "Could not load runs: ..." */
  noun: string;
}

/** A sidebar that polls one endpoint of the server extension and re-renders on change. */
export abstract class PollingPanel<T extends ISignedResponse> extends Widget {
  constructor(options: IPollingPanelOptions) {
    super();
    this._endpoint = options.endpoint;
    this._noun = options.noun;
    this.id = options.id;
    this.addClass('nbtk-sidebar');
    this.title.icon = options.icon;
    this.title.caption = options.title;

    const header = el('div', 'nbtk-sidebar-header');
    header.appendChild(el('span', 'nbtk-sidebar-title', options.title));
    const button = el('button', 'nbtk-refresh') as HTMLButtonElement;
    button.title = 'Refresh';
    button.setAttribute('aria-label', options.refreshLabel);
    refreshIcon.element({ container: button, height: '16px', width: '16px' });
    button.addEventListener('click', () => void this.refresh(true));
    header.appendChild(button);
    this._status = el('div', 'nbtk-status', 'Loading…');
    this.list = el('div', 'nbtk-list');
    this.node.append(header, this._status, this.list);
    this._timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh(false);
      }
    }, POLL_MS);
  }

  dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.refresh(false);
  }

  /** Reload from the server; re-render only when the signature changed (or `force`). */
  async refresh(force: boolean): Promise<void> {
    let data: T;
    try {
      const response = await requestAPI(this._endpoint);
      data = (await response.json()) as T;
    } catch (error) {
      this._status.textContent = `Could not load ${this._noun}: ${(error as Error).message}`;
      this._signature = '';
      return;
    }
    this._status.textContent = this.statusText(data);
    if (!force && data.signature === this._signature) {
      await this.unchanged(data);
      return;
    }
    this._signature = data.signature;
    await this.render(data);
  }

  /** The status line for a successful answer. */
  protected abstract statusText(data: T): string;

  /** Rebuild {@link list} from a new answer. */
  protected abstract render(data: T): void | Promise<void>;

  /** Called instead of {@link render} when the answer's signature did not change. */
  protected unchanged(_data: T): void | Promise<void> {
    // nothing to update by default
  }

  /** the container the subclass renders into */
  protected readonly list: HTMLElement;
  private _endpoint: string;
  private _noun: string;
  private _status: HTMLElement;
  private _signature = '';
  private _timer: number;
}
