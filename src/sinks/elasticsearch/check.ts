import { failure, type CheckResult } from '../../core/check.js';
import { maskUrl } from '../../core/postgres.js';
import type { ElasticsearchConfig } from './config.js';

/** `auditship check` of an elasticsearch sink: the cluster answers, and which flavor and version it is. */
export async function checkElasticsearch(pipeline: string, sink: ElasticsearchConfig, i: number): Promise<CheckResult> {
  const id = 'elasticsearch';
  const { detectCluster, elasticsearchOptions } = await import('./index.js');
  const { EsHttp } = await import('./http.js');
  const o = elasticsearchOptions(sink, 'check');
  let label = `pipeline ${pipeline}: sink elasticsearch ${maskUrl(o.url)}`;
  let http;
  try {
    http = new EsHttp({ url: o.url, auth: o.auth, caFile: o.caFile, insecure: o.insecure, timeoutMs: Math.min(o.timeoutMs, 10_000), maxSockets: 1 });
    label = `pipeline ${pipeline}: sink elasticsearch ${http.where}`;
    const info = await detectCluster(http, o.flavor);
    return { id, ok: true, what: `${label}: ${info.flavor === 'opensearch' ? 'OpenSearch' : 'Elasticsearch'} ${info.version}` };
  } catch (err) {
    // Transport failures carry no remedy of their own (the fallback), and name the URL the label shows.
    const r = failure(id, label, err, `check sinks[${i}].url, and that the cluster runs and is reachable from this host`);
    return { ...r, what: r.what.replace(`${label}: cannot connect to ${http?.where ?? ''}: `, `${label}: cannot connect: `) };
  } finally {
    http?.close();
  }
}
