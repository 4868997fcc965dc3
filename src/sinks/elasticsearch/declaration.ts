import type { SinkDeclaration } from '../../core/declaration.js';
import { ELASTICSEARCH_SINK } from './config.js';

/** Sink `elasticsearch`: Elasticsearch or OpenSearch, through the bulk API with create-by-id (index.ts). */
export const elasticsearch: SinkDeclaration<typeof ELASTICSEARCH_SINK> = {
  role: 'sink',
  spec: ELASTICSEARCH_SINK,
  accepts: ['pgaudit', 'row_changes', 'app_events'],
  check: async (pipeline, o, i) => (await import('./check.js')).checkElasticsearch(pipeline, o, i),
};
