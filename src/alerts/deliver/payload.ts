/**
 * Renders an AlertMessage for each receiver — our JSON, a Slack message (Block Kit), a Microsoft Teams
 * Adaptive Card, an e-mail body — and keeps every rendering within MAX_ALERT_BYTES (UTF-8, as sent).
 *
 * Cutting keeps the title and fields, then as much text as fits with all samples, dropping samples from the
 * end only when the text would otherwise shrink below MIN_TEXT_CHARS: one reader wants the sentence first
 * and an example second. Anything cut ends in CUT_MARK; no cut splits a UTF-16 surrogate pair. Pure
 * functions, no I/O.
 *
 * Receiver limits honoured (Slack's Block Kit reference; Teams takes about 28 KB per message, above our cap):
 * Slack header text ≤ 150 characters, section text ≤ 3000, ≤ 10 fields of ≤ 2000 each, ≤ 50 blocks; Slack
 * mrkdwn escapes & < > (so that audit data cannot write `<!channel>` or links); Teams text of the alert goes
 * into TextRuns, which do not interpret Markdown.
 */
import type { AlertMessage } from './types.js';

/** Cap of any rendered payload or e-mail body, in UTF-8 bytes. */
export const MAX_ALERT_BYTES = 16 * 1024;
/** Ends any text, value or list that was cut. */
export const CUT_MARK = '…(cut)';
/** The text is kept at least this long (when it is) before samples are dropped to make room. */
const MIN_TEXT_CHARS = 2048;
/** The e-mail subject's cap, in characters. */
export const MAX_SUBJECT_CHARS = 200;

// Caps applied before any format: they bound the work of fitting and keep one huge value from crowding out
// the rest.
const MAX_TITLE_CHARS = 1000;
const MAX_FIELDS = 50;
const MAX_FIELD_KEY_CHARS = 100;
const MAX_FIELD_VALUE_CHARS = 1000;
const MAX_SAMPLES = 20;
const MAX_SAMPLE_KEYS = 30;
const MAX_SAMPLE_VALUE_CHARS = 500;

type Value = string | number | null;

/** The parts of a message that fitting shrinks; renderers read only these (and the message's id etc.). */
export interface Parts {
  id: string;
  rule: string;
  firedAt: string;
  title: string;
  text: string;
  fields: [string, Value][];
  /** Fields left out (beyond MAX_FIELDS, or dropped to fit). */
  omittedFields: number;
  samples: [string, Value][][];
  /** Samples left out (beyond MAX_SAMPLES, or dropped to fit). */
  omittedSamples: number;
}

export type Renderer = (p: Parts) => string;

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** The first `n` UTF-16 code units of `s`, one fewer when the last would be half a surrogate pair. */
function prefix(s: string, n: number): string {
  if (n >= s.length) return s;
  if (n > 0 && isHighSurrogate(s.charCodeAt(n - 1))) n--;
  return s.slice(0, Math.max(0, n));
}

/**
 * `s` cut to at most `max` UTF-16 code units, CUT_MARK included (a shorter `max` than the mark still gives the
 * mark). `tidy` may shorten the kept prefix further (e.g. not to end inside an HTML entity).
 */
export function cutChars(s: string, max: number, tidy: (kept: string) => string = (k) => k): string {
  if (s.length <= max) return s;
  return tidy(prefix(s, max - CUT_MARK.length)) + CUT_MARK;
}

/** `s` cut to at most `maxBytes` of UTF-8, CUT_MARK included. */
export function cutBytes(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  const room = maxBytes - Buffer.byteLength(CUT_MARK, 'utf8');
  // Largest prefix within `room` bytes: every code unit is 1..3 bytes, so the answer lies in [room/3, room].
  let lo = 0;
  let hi = Math.min(s.length, Math.max(0, room));
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (Buffer.byteLength(prefix(s, mid), 'utf8') <= room) lo = mid;
    else hi = mid - 1;
  }
  return prefix(s, lo) + CUT_MARK;
}

/** One line: control characters and line breaks become spaces. */
export function oneLine(s: string): string {
  return s
    .replace(/[\u0000-\u001f\u007f\u0085\u2028\u2029]+/g, ' ')
    .replace(/ {2,}/g, ' ')
    .trim();
}

function bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function capValue(v: unknown, max: number): Value {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  return cutChars(String(v), max);
}

/** The message's parts with the format-independent caps applied. */
export function partsOf(msg: AlertMessage): Parts {
  const fieldEntries = Object.entries(msg.fields ?? {});
  const samples = (msg.samples ?? []).slice(0, MAX_SAMPLES).map((sample) =>
    Object.entries(sample ?? {})
      .slice(0, MAX_SAMPLE_KEYS)
      .map(([k, v]): [string, Value] => [cutChars(oneLine(k), MAX_FIELD_KEY_CHARS), capValue(v, MAX_SAMPLE_VALUE_CHARS)]),
  );
  return {
    id: String(msg.id),
    rule: cutChars(oneLine(String(msg.rule ?? '')), MAX_FIELD_KEY_CHARS * 2),
    firedAt: cutChars(oneLine(String(msg.firedAt ?? '')), 64),
    title: cutChars(oneLine(String(msg.title ?? '')), MAX_TITLE_CHARS),
    text: String(msg.text ?? ''),
    fields: fieldEntries.slice(0, MAX_FIELDS).map(([k, v]): [string, Value] => [cutChars(oneLine(k), MAX_FIELD_KEY_CHARS), capValue(v, MAX_FIELD_VALUE_CHARS)]),
    omittedFields: Math.max(0, fieldEntries.length - MAX_FIELDS),
    samples,
    omittedSamples: Math.max(0, (msg.samples ?? []).length - MAX_SAMPLES),
  };
}

/** The longest cut of p.text whose rendering fits, or null when not even the mark alone fits. */
function fitText(p: Parts, render: Renderer, cap: number): string | null {
  const fits = (n: number) => bytes(render({ ...p, text: cutChars(p.text, n) })) <= cap;
  if (p.text.length === 0) return bytes(render(p)) <= cap ? '' : null;
  if (!fits(0)) return null;
  // Every code unit is at least one byte, so no more than `cap` of them can fit.
  let lo = 0;
  let hi = Math.min(p.text.length, cap);
  if (hi === p.text.length && fits(hi)) return p.text;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return cutChars(p.text, lo);
}

/** Renders `p` within `cap` bytes, cutting text, then samples, then fields, then the title. */
export function fit(p: Parts, render: Renderer, cap = MAX_ALERT_BYTES): string {
  const whole = render(p);
  if (bytes(whole) <= cap) return whole;
  let parts = { ...p, samples: [...p.samples], fields: [...p.fields] };
  const wanted = Math.min(p.text.length, MIN_TEXT_CHARS);
  for (;;) {
    const text = fitText(parts, render, cap);
    if (text !== null && (text.length >= wanted || parts.samples.length === 0)) return render({ ...parts, text });
    if (parts.samples.length === 0) break;
    parts.samples.pop();
    parts.omittedSamples++;
  }
  parts.text = cutChars(parts.text, 0);
  while (parts.fields.length > 0 && bytes(render(parts)) > cap) {
    parts.fields.pop();
    parts.omittedFields++;
  }
  for (let max = parts.title.length; max > 0 && bytes(render(parts)) > cap; max = Math.floor(max / 2)) parts.title = cutChars(p.title, max);
  const last = render(parts);
  if (bytes(last) > cap) throw new Error(`alert payload does not fit in ${cap} bytes even when cut (this is a bug)`);
  return last;
}

// ---- shared text pieces

function valueText(v: Value): string {
  return v === null ? '—' : String(v);
}

/** A sample as one line: key=value, values quoted when they hold spaces, quotes or '='. */
export function sampleLine(sample: [string, Value][]): string {
  return sample
    .map(([k, v]) => {
      const s = oneLine(valueText(v));
      return `${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
    })
    .join(' ');
}

function omittedNote(n: number, what: string): string {
  return `${CUT_MARK} ${n} more ${what}${n === 1 ? '' : 's'}`;
}

function sampleLines(p: Parts): string {
  const lines = p.samples.map(sampleLine);
  if (p.omittedSamples > 0) lines.push(omittedNote(p.omittedSamples, 'sample'));
  return lines.join('\n');
}

function footer(p: Parts): string {
  return `auditship · rule ${p.rule} · fired ${p.firedAt} · alert ${p.id}`;
}

// ---- json

/** Our own format: {id, rule, title, text, fields, fired_at, samples}; cut lists end in a {"…(cut)": n} entry. */
export const renderJson: Renderer = (p) => {
  const fields: Record<string, Value> = Object.fromEntries(p.fields);
  if (p.omittedFields > 0) fields[CUT_MARK] = p.omittedFields;
  const samples: Record<string, Value>[] = p.samples.map((s) => Object.fromEntries(s));
  if (p.omittedSamples > 0) samples.push({ [CUT_MARK]: p.omittedSamples });
  return JSON.stringify({ id: p.id, rule: p.rule, title: p.title, text: p.text, fields, fired_at: p.firedAt, samples });
};

// ---- slack

const SLACK_HEADER_CHARS = 150;
const SLACK_SECTION_CHARS = 3000;
const SLACK_FIELD_CHARS = 2000;
const SLACK_FIELDS_PER_SECTION = 10;
/** Fields beyond this many sections of ten are counted, not shown (the message has at most 50 blocks). */
const SLACK_FIELD_SECTIONS = 3;

/** Slack's mrkdwn escaping: & < > (a `<!channel>` or `<url|text>` in audit data stays text). */
export function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Not to end a cut inside an &amp; / &lt; / &gt; entity. */
function tidyEntity(kept: string): string {
  return kept.replace(/&[a-z]{0,3}$/, '');
}

function plain(text: string, max: number) {
  return { type: 'plain_text', text: cutChars(text, max), emoji: false };
}

/** A Slack incoming-webhook message: `text` (the notification) plus header, text, fields, samples, context. */
export const renderSlack: Renderer = (p) => {
  const title = p.title || `auditship: ${p.rule}`;
  const blocks: unknown[] = [{ type: 'header', text: plain(title, SLACK_HEADER_CHARS) }];
  if (p.text.trim()) blocks.push({ type: 'section', text: plain(p.text, SLACK_SECTION_CHARS) });
  const shown = p.fields.slice(0, SLACK_FIELDS_PER_SECTION * SLACK_FIELD_SECTIONS);
  for (let i = 0; i < shown.length; i += SLACK_FIELDS_PER_SECTION) {
    blocks.push({
      type: 'section',
      fields: shown
        .slice(i, i + SLACK_FIELDS_PER_SECTION)
        .map(([k, v]) => ({ type: 'mrkdwn', text: cutChars(`*${slackEscape(k)}*\n${slackEscape(valueText(v))}`, SLACK_FIELD_CHARS, tidyEntity) })),
    });
  }
  const omittedFields = p.omittedFields + (p.fields.length - shown.length);
  const samples = sampleLines(p);
  if (samples) blocks.push({ type: 'section', text: plain(`Sample events:\n${samples}`, SLACK_SECTION_CHARS) });
  const context = omittedFields > 0 ? `${footer(p)} · ${omittedNote(omittedFields, 'field')}` : footer(p);
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: cutChars(slackEscape(context), SLACK_FIELD_CHARS, tidyEntity) }] });
  return JSON.stringify({ text: cutChars(slackEscape(title), SLACK_SECTION_CHARS, tidyEntity), blocks });
};

// ---- teams

/** A Teams Workflows ("post a card in a chat or channel") message: one Adaptive Card 1.4 attachment. */
export const renderTeams: Renderer = (p) => {
  const run = (text: string, style: Record<string, string | boolean> = {}) => ({ type: 'RichTextBlock', inlines: [{ type: 'TextRun', text, ...style }] });
  const body: unknown[] = [run(p.title || `auditship: ${p.rule}`, { size: 'Medium', weight: 'Bolder' })];
  if (p.text.trim()) body.push(run(p.text));
  const facts = p.fields.map(([k, v]) => ({ title: k, value: valueText(v) }));
  if (p.omittedFields > 0) facts.push({ title: CUT_MARK, value: omittedNote(p.omittedFields, 'field') });
  if (facts.length > 0) body.push({ type: 'FactSet', facts });
  const samples = sampleLines(p);
  if (samples) body.push(run('Sample events', { weight: 'Bolder' }), run(samples, { fontType: 'Monospace' }));
  body.push(run(footer(p), { isSubtle: true, size: 'Small' }));
  return JSON.stringify({
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: { $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: '1.4', msteams: { width: 'Full' }, body },
      },
    ],
  });
};

// ---- e-mail

/** The plain-text body of an alert e-mail. */
export const renderEmailText: Renderer = (p) => {
  const parts: string[] = [];
  if (p.text) parts.push(p.text);
  const fields = p.fields.map(([k, v]) => `${k}: ${oneLine(valueText(v))}`);
  if (p.omittedFields > 0) fields.push(omittedNote(p.omittedFields, 'field'));
  if (fields.length > 0) parts.push(fields.join('\n'));
  const samples = sampleLines(p);
  if (samples) parts.push(`Sample events:\n${samples}`);
  parts.push(`-- \n${footer(p)}`);
  return parts.join('\n\n') + '\n';
};

/** The e-mail subject: the title on one line, at most MAX_SUBJECT_CHARS. */
export function emailSubject(msg: AlertMessage): string {
  const title = oneLine(String(msg.title ?? '')) || `auditship: ${oneLine(String(msg.rule ?? 'alert'))}`;
  return cutChars(title, MAX_SUBJECT_CHARS);
}

export type WebhookFormat = 'json' | 'slack' | 'teams';

const RENDERERS: Record<WebhookFormat, Renderer> = { json: renderJson, slack: renderSlack, teams: renderTeams };

/** The JSON body POSTed to a webhook of `format`, within MAX_ALERT_BYTES. */
export function renderWebhookBody(format: WebhookFormat, msg: AlertMessage, cap = MAX_ALERT_BYTES): string {
  const render = RENDERERS[format];
  if (!render) throw new Error(`unknown webhook format ${JSON.stringify(format)} (this is a bug: the config allows json, slack, teams)`);
  return fit(partsOf(msg), render, cap);
}

/** The e-mail body, within MAX_ALERT_BYTES. */
export function renderEmailBody(msg: AlertMessage, cap = MAX_ALERT_BYTES): string {
  return fit(partsOf(msg), renderEmailText, cap);
}
