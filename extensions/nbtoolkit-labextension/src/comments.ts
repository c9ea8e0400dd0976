/**
 * Reviewers' comments and ratings (`nbtk comment`) under the runs and experiments of the
 * "Experiments" sidebar. The panel renders an empty `.nbtk-comments` box per run
 * (`data-run-id`) and per experiment (`data-experiment`); {@link CommentsLoader.load} asks
 * `GET /nbtoolkit/api/comments` about all of them in one request and fills the boxes when the
 * answer changed. Comment text and names are user text: textContent only.
 */
import { el, requestAPI } from './api';

/** One comment as the server returns it. */
export interface IComment {
  id: number;
  by: string;
  text: string;
  rating: number | null;
  created: string;
}

interface ICommentsResponse {
  runs: Record<string, IComment[]>;
  experiments: Record<string, IComment[]>;
  signature: string;
}

/** `★★★☆☆` for a 1-5 rating. */
export function stars(rating: number): string {
  const n = Math.max(0, Math.min(5, Math.round(rating)));
  return '★'.repeat(n) + '☆'.repeat(5 - n);
}

/** One comment: rating stars, who, the text. */
export function commentNode(comment: IComment): HTMLElement {
  const node = el('div', 'nbtk-comment');
  node.dataset.commentId = String(comment.id);
  node.title = comment.created;
  if (comment.rating !== null) {
    const rating = el('span', 'nbtk-comment-rating', stars(comment.rating));
    rating.dataset.rating = String(comment.rating);
    rating.setAttribute('aria-label', `rated ${comment.rating} of 5`);
    node.appendChild(rating);
  }
  node.append(el('span', 'nbtk-comment-by', comment.by), el('span', 'nbtk-comment-text', comment.text));
  return node;
}

/** Fills the comment boxes of one panel; remembers the last answer to skip needless redraws. */
export class CommentsLoader {
  constructor(root: HTMLElement) {
    this._root = root;
  }

  /** Fetch the comments of every box under the root; redraw when they changed (or `force`). */
  async load(force: boolean): Promise<void> {
    const boxes = Array.from(this._root.querySelectorAll<HTMLElement>('.nbtk-comments'));
    const query = new URLSearchParams();
    for (const box of boxes) {
      if (box.dataset.runId) {
        query.append('run', box.dataset.runId);
      } else if (box.dataset.experiment) {
        query.append('experiment', box.dataset.experiment);
      }
    }
    if (!boxes.length) {
      return;
    }
    let data: ICommentsResponse;
    try {
      const response = await requestAPI(`comments?${query.toString()}`);
      data = (await response.json()) as ICommentsResponse;
    } catch {
      return; // the listing itself reports server trouble
    }
    if (!force && data.signature === this._signature) {
      return;
    }
    this._signature = data.signature;
    for (const box of boxes) {
      const found = box.dataset.runId
        ? data.runs[box.dataset.runId]
        : data.experiments[box.dataset.experiment ?? ''];
      box.replaceChildren(...(found ?? []).map(commentNode));
      box.hidden = !found || found.length === 0;
    }
  }

  private _root: HTMLElement;
  private _signature = '';
}
