/**
 * The webhook transport: one JSON POST per alert with node's fetch (undici inside Node 20), an overall timeout
 * and the caller's AbortSignal. 2xx is delivered; 408, 425, 429, 5xx, connection failures and timeouts are
 * worth a retry (Retry-After is passed on); any other status is final. Redirects are not followed — the
 * POST would carry the alert to wherever the answer points — and count as a final failure.
 *
 * Error messages name the destination and the status, never the URL: Slack's and Teams' webhook URLs are the
 * credential.
 */
import { renderWebhookBody } from './payload.js';
import { DeliveryError, type AlertMessage, type WebhookDestination } from './types.js';

/** Statuses after which the same request may succeed later. */
const RETRYABLE_STATUS = new Set([408, 425, 429]);

export function retryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status) || (status >= 500 && status <= 599);
}

/** A Retry-After value (delay-seconds or an HTTP-date) in milliseconds from `now`, or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Our headers win over configured ones of the same name (case-insensitive). */
const OWN_HEADERS = new Set(['content-type', 'idempotency-key', 'x-auditship-alert-id', 'content-length']);

function requestHeaders(dest: WebhookDestination, msg: AlertMessage): Record<string, string> {
  const label = `webhook ${JSON.stringify(dest.name)}`;
  const headers: Record<string, string> = { 'user-agent': 'auditship' };
  for (const [name, value] of Object.entries(dest.headers ?? {})) {
    // Checked here rather than left to fetch, whose error would quote the value (often a token).
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new DeliveryError(`${label}: header name ${JSON.stringify(name)} is not a valid HTTP header name`, false, { code: 'config' });
    if (/[\r\n\0]/.test(String(value))) throw new DeliveryError(`${label}: the value of header ${name} holds a line break`, false, { code: 'config' });
    if (!OWN_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = String(value);
  }
  if (/[\r\n\0]/.test(msg.id)) throw new DeliveryError(`${label}: the alert id holds a line break`, false, { code: 'config' });
  headers['content-type'] = 'application/json';
  headers['idempotency-key'] = msg.id;
  headers['x-auditship-alert-id'] = msg.id;
  return headers;
}

/** A short error word from the receiver (Slack answers `invalid_blocks`, `channel_not_found`…), or ''. */
async function errorWord(res: Response): Promise<string> {
  try {
    const text = (await res.text()).trim();
    return /^[A-Za-z0-9_.-]{1,64}$/.test(text) ? ` (${text})` : '';
  } catch {
    return '';
  }
}

/** The system error code under fetch's "fetch failed" (ECONNREFUSED, ENOTFOUND, UND_ERR_SOCKET…). */
function networkCode(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return 'network error';
}

/** POSTs `msg` to a webhook; resolves on 2xx; rejects with a DeliveryError. */
export async function deliverWebhook(dest: WebhookDestination, msg: AlertMessage, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const label = `webhook ${JSON.stringify(dest.name)}`;
  let url: URL;
  try {
    url = new URL(dest.url);
  } catch {
    throw new DeliveryError(`${label}: url is not a valid URL`, false, { code: 'config' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DeliveryError(`${label}: url must be http:// or https://`, false, { code: 'config' });
  if (url.username || url.password) throw new DeliveryError(`${label}: url must not hold a user name or password (use headers)`, false, { code: 'config' });
  const headers = requestHeaders(dest, msg);
  const body = renderWebhookBody(dest.format, msg);

  if (opts.signal?.aborted) throw new DeliveryError(`${label}: aborted before sending`, true, { code: 'aborted' });
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, dest.timeout_ms);
  const onAbort = () => controller.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: controller.signal });
    } catch (err) {
      if (timedOut) throw new DeliveryError(`${label}: no answer within ${dest.timeout_ms} ms`, true, { code: 'timeout' });
      if (opts.signal?.aborted) throw new DeliveryError(`${label}: aborted`, true, { code: 'aborted' });
      throw new DeliveryError(`${label}: connection failed (${networkCode(err)})`, true, { code: 'connection' });
    }
    if (res.status >= 200 && res.status <= 299) {
      // Read the (small) answer so that the connection can be reused; a receiver that stalls here has
      // accepted the alert already.
      await res.arrayBuffer().catch(() => undefined);
      return;
    }
    const word = await errorWord(res);
    if (res.status >= 300 && res.status <= 399) {
      throw new DeliveryError(`${label}: HTTP ${res.status}, a redirect (not followed: set url to where it points)`, false, { status: res.status });
    }
    const retryable = retryableStatus(res.status);
    const retryAfterMs = retryable ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
    throw new DeliveryError(`${label}: HTTP ${res.status}${word}`, retryable, {
      code: 'rejected',
      status: res.status,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  } catch (err) {
    if (err instanceof DeliveryError) throw err;
    // Reading the answer failed after the status line: the outcome is unknown, so a retry is due (the receiver
    // drops a repeat by its Idempotency-Key).
    if (timedOut) throw new DeliveryError(`${label}: no answer within ${dest.timeout_ms} ms`, true, { code: 'timeout' });
    if (opts.signal?.aborted) throw new DeliveryError(`${label}: aborted`, true, { code: 'aborted' });
    throw new DeliveryError(`${label}: connection failed (${networkCode(err)})`, true, { code: 'connection' });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
