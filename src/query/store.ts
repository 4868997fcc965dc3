import { AppEventQueries } from './app-events.js';
import { EventListQueries } from './event-list.js';
import { AuditQueries, type QueryRunner } from './queries.js';
import { RowChangeQueries } from './row-changes.js';

/** Every question the UI asks of one store: the pgaudit events, the sorted event list, row changes, application events. */
export interface StoreQueries extends AuditQueries {
  eventList: EventListQueries;
  rowChanges: RowChangeQueries;
  appEvents: AppEventQueries;
}

/** The queries of one store over one runner (`auditship ui`, the daemon's UI). */
export function storeQueries(db: QueryRunner): StoreQueries {
  return Object.assign(new AuditQueries(db), {
    eventList: new EventListQueries(db),
    rowChanges: new RowChangeQueries(db),
    appEvents: new AppEventQueries(db),
  });
}
