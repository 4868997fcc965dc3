/**
 * Every AWS API call auditship makes, with the IAM actions it needs. deploy/lambda/template.yaml grants the
 * Lambda function exactly these, on its buckets and instances: test/lambda/permissions.test.ts reads the calls
 * in the code (`new …Command(`, and RDS's signed REST download) and the template's policy and checks that they
 * match, and the Lambda tests check that every request the test servers saw is covered.
 */
export const AWS_CALLS: Readonly<Record<string, readonly string[]>> = {
  // S3 (sinks/archive/store-s3.ts: the archive sink, the state in S3, ledger anchors, a config in S3).
  HeadBucket: ['s3:ListBucket'],
  ListObjectsV2: ['s3:ListBucket'],
  GetObject: ['s3:GetObject'],
  HeadObject: ['s3:GetObject'],
  PutObject: ['s3:PutObject'],
  CreateMultipartUpload: ['s3:PutObject'],
  UploadPart: ['s3:PutObject'],
  CompleteMultipartUpload: ['s3:PutObject'],
  AbortMultipartUpload: ['s3:AbortMultipartUpload'],
  ListMultipartUploads: ['s3:ListBucketMultipartUploads'],
  DeleteObject: ['s3:DeleteObject'],
  // RDS (sources/rds-logs/api.ts); the whole-file download is a REST call no SDK implements.
  DescribeDBLogFiles: ['rds:DescribeDBLogFiles'],
  DownloadDBLogFilePortion: ['rds:DownloadDBLogFilePortion'],
  downloadCompleteLogFile: ['rds:DownloadCompleteDBLogFile'],
};

/** Actions a call needs only with an option, and the option. */
export const OPTIONAL_ACTIONS: Readonly<Record<string, string>> = {
  's3:PutObjectRetention': 'archive object_lock_mode: a write with retention headers',
  'kms:GenerateDataKey': 'sse: aws:kms (writes)',
  'kms:Decrypt': 'sse: aws:kms (reads, and multipart writes)',
};
