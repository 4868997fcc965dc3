import { failure, notingLogger, withTimeout, type CheckResult } from '../../core/check.js';
import { rdsApiTarget, type RdsLogsConfig } from './config.js';

/** `auditship check` of an rds_logs source: one page of DescribeDBLogFiles proves credentials, permission and instance. */
export async function checkRdsLogs(pipeline: string, src: RdsLogsConfig): Promise<CheckResult> {
  const target = rdsApiTarget(src);
  const { instance, region } = target;
  const label = `pipeline ${pipeline}: source rds_logs ${instance} in ${region}`;
  const { RdsApi } = await import('./api.js');
  const { DescribeDBLogFilesCommand } = await import('@aws-sdk/client-rds');
  const api = new RdsApi({ ...target, maxRetries: 1, timeoutMs: 15_000 }, notingLogger([]));
  try {
    // One page of at most 20 files (RDS's smallest page): enough to prove credentials, permission and instance.
    const r = await withTimeout(api.client.send(new DescribeDBLogFilesCommand({ DBInstanceIdentifier: instance, MaxRecords: 20 })), `the RDS API in ${region}`);
    const n = r.DescribeDBLogFiles?.length ?? 0;
    return { id: 'rds_logs', ok: true, what: `${label}: DescribeDBLogFiles answers (${n}${r.Marker ? '+' : ''} log file${n === 1 ? '' : 's'})` };
  } catch (err) {
    return failure('rds_logs', label, api.error(err, 'DescribeDBLogFiles'), 'check instance, region and the AWS credentials');
  } finally {
    api.close();
  }
}
