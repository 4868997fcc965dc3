/**
 * The Elasticsearch/OpenSearch test server against the documented behaviour it stands in for.
 * It is test infrastructure for the elasticsearch sink: when it is wrong, those tests prove nothing.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { startEsServer, type EsServerHandle, type EsServerOptions } from './server.js';
import { spawnEsServer } from './client.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

function call(url: string, method: string, path: string, opts: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
    const headers: Record<string, string | number> = { ...opts.headers };
    if (body) {
      headers['content-length'] = body.length;
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    }
    const req = http.request(new URL(path, url), { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const ndjson = (lines: unknown[]): string => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
const NDJSON = { 'content-type': 'application/x-ndjson' };
const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });

async function withServer(opts: EsServerOptions, fn: (es: EsServerHandle) => Promise<void>): Promise<void> {
  const es = await startEsServer(opts);
  try {
    await fn(es);
  } finally {
    await es.close();
  }
}

function bulk(url: string, lines: unknown[], query = '', headers: Record<string, string> = {}): Promise<Res> {
  return call(url, 'POST', `/_bulk${query}`, { body: ndjson(lines), headers: { ...NDJSON, ...headers } });
}

describe('root endpoint', () => {
  test('Elasticsearch: info, product header, pretty body', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      const r = await call(es.url, 'GET', '/');
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-elastic-product'], 'Elasticsearch');
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.json.version.number, '8.15.0');
      assert.equal(r.json.version.build_flavor, 'default');
      assert.equal(r.json.version.distribution, undefined);
      assert.match(r.json.version.lucene_version, /^\d+\.\d+\.\d+$/);
      assert.equal(r.json.tagline, 'You Know, for Search');
      for (const k of ['name', 'cluster_name', 'cluster_uuid']) assert.equal(typeof r.json[k], 'string');
      const head = await call(es.url, 'HEAD', '/');
      assert.equal(head.status, 200);
    });
  });

  test('OpenSearch: distribution, tagline, no product header', async () => {
    await withServer({ flavor: 'opensearch' }, async (es) => {
      const r = await call(es.url, 'GET', '/');
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-elastic-product'], undefined);
      assert.equal(r.json.version.distribution, 'opensearch');
      assert.equal(r.json.version.number, '2.17.0');
      assert.equal(r.json.version.build_flavor, undefined);
      assert.equal(r.json.tagline, 'The OpenSearch Project: https://opensearch.org/');
    });
  });

  test('Elasticsearch 8 refuses compatible-with=9 and accepts 8 and plain JSON; 9.x accepts 8 and 9', async () => {
    await withServer({ flavor: 'elasticsearch', version: '8.15.0' }, async (es) => {
      const v9 = 'application/vnd.elasticsearch+json; compatible-with=9';
      const v8 = 'application/vnd.elasticsearch+json; compatible-with=8';
      let r = await call(es.url, 'GET', '/', { headers: { accept: v9 } });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.type, 'media_type_header_exception');
      assert.equal(r.json.error.reason, 'Invalid media-type value on headers [Accept, Content-Type]');
      assert.equal(r.json.error.caused_by.type, 'status_exception');
      assert.match(r.json.error.caused_by.reason, /^Accept version must be either version 8 or 7, but found 9\./);
      assert.equal(r.json.status, 400);
      // The v9 client sends both headers on a body-carrying request.
      r = await bulk(es.url, [{ create: { _index: 'x', _id: '1' } }, { a: 1 }], '', {
        accept: v9,
        'content-type': 'application/vnd.elasticsearch+x-ndjson; compatible-with=9',
      });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.type, 'media_type_header_exception');
      r = await call(es.url, 'GET', '/', { headers: { accept: v8 } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/vnd.elasticsearch+json;compatible-with=8');
      r = await bulk(es.url, [{ create: { _index: 'x', _id: '1' } }, { a: 1 }], '', {
        accept: v8,
        'content-type': 'application/vnd.elasticsearch+x-ndjson; compatible-with=8',
      });
      assert.equal(r.status, 200);
      // Versioned Accept with an unversioned Content-Type is refused, as the real helper does.
      r = await bulk(es.url, [{ create: { _index: 'x', _id: '2' } }, { a: 1 }], '', { accept: v8 });
      assert.equal(r.status, 400);
      assert.match(r.json.error.caused_by.reason, /A compatible version is required on both Content-Type and Accept headers/);
      r = await call(es.url, 'GET', '/', { headers: { accept: 'application/json' } });
      assert.equal(r.status, 200);
    });
    await withServer({ flavor: 'elasticsearch', version: '9.1.0' }, async (es) => {
      for (const v of [8, 9]) {
        const r = await call(es.url, 'GET', '/', { headers: { accept: `application/vnd.elasticsearch+json; compatible-with=${v}` } });
        assert.equal(r.status, 200, `compatible-with=${v}`);
      }
      const r = await call(es.url, 'GET', '/', { headers: { accept: 'application/vnd.elasticsearch+json; compatible-with=7' } });
      assert.equal(r.status, 400);
      assert.match(r.json.error.caused_by.reason, /must be either version 9 or 8, but found 7/);
    });
  });

  test('unsupported or missing Content-Type with a body is 406; an unknown route is 400', async () => {
    await withServer({}, async (es) => {
      let r = await call(es.url, 'POST', '/_bulk', { body: '{}\n', headers: { 'content-type': 'text/plain' } });
      assert.equal(r.status, 406);
      assert.equal(r.json.error, 'Content-Type header [text/plain] is not supported');
      r = await call(es.url, 'GET', '/_nothing/here/at/all');
      assert.equal(r.status, 400);
      assert.match(r.json.error, /^no handler found for uri \[\/_nothing\/here\/at\/all\] and method \[GET\]$/);
      r = await call(es.url, 'GET', '/_bulk');
      assert.equal(r.status, 405);
    });
  });
});

describe('security', () => {
  const auth = {
    users: [
      { username: 'elastic', password: 'changeme' },
      { username: 'reader', password: 'r3ad', readOnly: true },
    ],
    apiKeys: [{ id: 'k1', key: 'secret' }],
    bearerTokens: [{ token: 'tok-123', principal: 'svc' }],
  };

  test('Elasticsearch: 401 without or with wrong credentials, basic / API key / bearer accepted', async () => {
    await withServer({ flavor: 'elasticsearch', auth }, async (es) => {
      let r = await call(es.url, 'GET', '/');
      assert.equal(r.status, 401);
      assert.equal(r.json.error.type, 'security_exception');
      assert.equal(r.json.error.root_cause[0].type, 'security_exception');
      assert.equal(r.json.error.reason, 'missing authentication credentials for REST request [/]');
      assert.equal(r.json.status, 401);
      const www = r.headers['www-authenticate'];
      assert.ok(www && String(www).includes('Basic realm="security"'), String(www));
      assert.equal(r.headers['x-elastic-product'], 'Elasticsearch');
      r = await call(es.url, 'GET', '/', { headers: basic('elastic', 'wrong') });
      assert.equal(r.status, 401);
      assert.equal(r.json.error.reason, 'unable to authenticate user [elastic] for REST request [/]');
      assert.equal((await call(es.url, 'GET', '/', { headers: basic('elastic', 'changeme') })).status, 200);
      assert.equal((await call(es.url, 'GET', '/', { headers: { authorization: `ApiKey ${Buffer.from('k1:secret').toString('base64')}` } })).status, 200);
      assert.equal((await call(es.url, 'GET', '/', { headers: { authorization: `ApiKey ${Buffer.from('k1:nope').toString('base64')}` } })).status, 401);
      assert.equal((await call(es.url, 'GET', '/', { headers: { authorization: 'Bearer tok-123' } })).status, 200);
      assert.equal((await call(es.url, 'GET', '/', { headers: { authorization: 'Bearer nope' } })).status, 401);
    });
  });

  test('Elasticsearch: a read-only user reads but gets 403 on bulk and template PUT; _has_privileges tells', async () => {
    await withServer({ flavor: 'elasticsearch', auth }, async (es) => {
      const ro = basic('reader', 'r3ad');
      assert.equal((await call(es.url, 'GET', '/', { headers: ro })).status, 200);
      let r = await bulk(es.url, [{ create: { _index: 'a', _id: '1' } }, { x: 1 }], '', ro);
      assert.equal(r.status, 403);
      assert.equal(r.json.error.type, 'security_exception');
      assert.match(r.json.error.reason, /^action \[indices:data\/write\/bulk\] is unauthorized for user \[reader\]/);
      r = await call(es.url, 'PUT', '/_index_template/t', { body: JSON.stringify({ index_patterns: ['a-*'] }), headers: ro });
      assert.equal(r.status, 403);
      assert.match(r.json.error.reason, /indices:admin\/index_template\/put/);
      const q = JSON.stringify({
        cluster: ['monitor', 'manage_index_templates'],
        index: [{ names: ['auditship-*'], privileges: ['create_doc', 'create_index'] }],
      });
      r = await call(es.url, 'POST', '/_security/user/_has_privileges', { body: q, headers: ro });
      assert.equal(r.status, 200);
      assert.equal(r.json.has_all_requested, false);
      assert.equal(r.json.username, 'reader');
      assert.deepEqual(r.json.cluster, { monitor: true, manage_index_templates: false });
      assert.deepEqual(r.json.index, { 'auditship-*': { create_doc: false, create_index: false } });
      r = await call(es.url, 'POST', '/_security/user/_has_privileges', { body: q, headers: basic('elastic', 'changeme') });
      assert.equal(r.json.has_all_requested, true);
      r = await bulk(es.url, [{ create: { _index: 'a', _id: '1' } }, { x: 1 }], '', basic('elastic', 'changeme'));
      assert.equal(r.status, 200);
    });
  });

  test('OpenSearch: bare 401 challenge, 403 shape, no _has_privileges route', async () => {
    await withServer({ flavor: 'opensearch', auth }, async (es) => {
      let r = await call(es.url, 'GET', '/');
      assert.equal(r.status, 401);
      assert.equal(r.text, 'Unauthorized');
      assert.equal(r.headers['www-authenticate'], 'Basic realm="OpenSearch Security"');
      r = await bulk(es.url, [{ create: { _index: 'a', _id: '1' } }, { x: 1 }], '', basic('reader', 'r3ad'));
      assert.equal(r.status, 403);
      assert.equal(r.json.error.type, 'security_exception');
      assert.equal(r.json.error.reason, 'no permissions for [indices:data/write/bulk] and User [name=reader, backend_roles=[], requestedTenant=null]');
      r = await call(es.url, 'POST', '/_security/user/_has_privileges', { body: '{}', headers: basic('elastic', 'changeme') });
      assert.ok(r.status === 400 || r.status === 404, String(r.status));
      assert.match(r.json.error, /no handler found for uri/);
    });
  });

  test('_has_privileges with security disabled is the 500 Elasticsearch gives', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      const r = await call(es.url, 'POST', '/_security/user/_has_privileges', { body: '{"cluster":["monitor"]}' });
      assert.equal(r.status, 500);
      assert.match(r.json.error.reason, /Security must be explicitly enabled/);
    });
  });
});

describe('index templates and mappings', () => {
  const template = {
    index_patterns: ['audit-*'],
    priority: 200,
    template: {
      settings: { number_of_shards: 1, number_of_replicas: 0, 'index.refresh_interval': '5s' },
      mappings: {
        dynamic: 'strict',
        properties: {
          '@timestamp': { type: 'date' },
          user: { properties: { name: { type: 'keyword' } } },
          source: { properties: { ip: { type: 'ip' }, port: { type: 'long' } } },
          statement: { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 8191 } } },
        },
      },
    },
    _meta: { managed_by: 'test' },
  };

  test('PUT / GET / 404, and an implicitly created index takes the template mappings and settings', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      let r = await call(es.url, 'PUT', '/_index_template/audit', { body: JSON.stringify(template) });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { acknowledged: true });
      r = await call(es.url, 'GET', '/_index_template/audit');
      assert.equal(r.status, 200);
      assert.equal(r.json.index_templates.length, 1);
      assert.equal(r.json.index_templates[0].name, 'audit');
      assert.deepEqual(r.json.index_templates[0].index_template.index_patterns, ['audit-*']);
      assert.equal(r.json.index_templates[0].index_template.priority, 200);
      assert.deepEqual(r.json.index_templates[0].index_template.template.mappings, template.template.mappings);
      r = await call(es.url, 'GET', '/_index_template/missing');
      assert.equal(r.status, 404);
      assert.equal(r.json.error.type, 'resource_not_found_exception');
      assert.equal(r.json.error.reason, 'index template matching [missing] not found');

      r = await bulk(es.url, [
        { create: { _index: 'audit-2024.05.01', _id: 'e1' } },
        { '@timestamp': '2024-05-01T10:00:00.000Z', user: { name: 'alice' }, source: { ip: '10.0.0.1', port: 5432 }, statement: 'SELECT 1' },
      ]);
      assert.equal(r.status, 200);
      assert.equal(r.json.errors, false);
      assert.equal(r.json.items[0].create.status, 201);
      assert.deepEqual(r.json.items[0].create._shards, { total: 1, successful: 1, failed: 0 }); // number_of_replicas: 0
      r = await call(es.url, 'GET', '/audit-2024.05.01/_mapping');
      assert.deepEqual(r.json['audit-2024.05.01'].mappings, template.template.mappings);
      r = await call(es.url, 'GET', '/audit-2024.05.01');
      assert.equal(r.json['audit-2024.05.01'].settings.index.refresh_interval, '5s');
      // dynamic: strict
      r = await bulk(es.url, [{ create: { _index: 'audit-2024.05.01', _id: 'e2' } }, { '@timestamp': '2024-05-01T10:00:00Z', extra: 1 }]);
      assert.equal(r.json.errors, true);
      assert.equal(r.json.items[0].create.status, 400);
      assert.equal(r.json.items[0].create.error.type, 'strict_dynamic_mapping_exception');
      assert.equal(r.json.items[0].create.error.reason, '[1:46] mapping set to strict, dynamic introduction of [extra] within [_doc] is not allowed');
    });
  });

  test('the highest priority template wins; same priority with overlapping patterns is refused', async () => {
    await withServer({}, async (es) => {
      const low = { index_patterns: ['logs-*'], priority: 1, template: { mappings: { properties: { v: { type: 'keyword' } } } } };
      const high = { index_patterns: ['logs-app-*'], priority: 5, template: { mappings: { properties: { v: { type: 'long' } } } } };
      assert.equal((await call(es.url, 'PUT', '/_index_template/low', { body: JSON.stringify(low) })).status, 200);
      assert.equal((await call(es.url, 'PUT', '/_index_template/high', { body: JSON.stringify(high) })).status, 200);
      await bulk(es.url, [{ index: { _index: 'logs-app-1' } }, { v: 1 }, { index: { _index: 'logs-db-1' } }, { v: 1 }]);
      const m = (await call(es.url, 'GET', '/logs-*/_mapping')).json;
      assert.equal(m['logs-app-1'].mappings.properties.v.type, 'long');
      assert.equal(m['logs-db-1'].mappings.properties.v.type, 'keyword');
      const clash = await call(es.url, 'PUT', '/_index_template/clash', { body: JSON.stringify({ index_patterns: ['logs-app-x*'], priority: 5 }) });
      assert.equal(clash.status, 400);
      assert.equal(clash.json.error.type, 'illegal_argument_exception');
      assert.match(clash.json.error.reason, /have the same priority \[5\], multiple index templates may not match during index creation/);
      const noPatterns = await call(es.url, 'PUT', '/_index_template/bad', { body: JSON.stringify({ priority: 9 }) });
      assert.equal(noPatterns.status, 400);
      assert.equal(noPatterns.json.error.type, 'action_request_validation_exception');
      const badType = await call(es.url, 'PUT', '/_index_template/bad', {
        body: JSON.stringify({ index_patterns: ['z-*'], template: { mappings: { properties: { a: { type: 'strnig' } } } } }),
      });
      assert.equal(badType.status, 400);
      assert.equal(badType.json.error.type, 'mapper_parsing_exception');
    });
  });

  test('PUT /<target>/_mapping adds fields to every index it names; a changed type is refused; a wildcard naming none is no error', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      const strict = {
        index_patterns: ['pm-*'],
        template: { mappings: { dynamic: 'strict', properties: { a: { type: 'keyword' }, o: { properties: { x: { type: 'long' } } } } } },
      };
      assert.equal((await call(es.url, 'PUT', '/_index_template/pm', { body: JSON.stringify(strict) })).status, 200);
      assert.equal(
        (await bulk(es.url, [{ create: { _index: 'pm-1', _id: '1' } }, { a: 'x' }, { create: { _index: 'pm-2', _id: '1' } }, { a: 'y' }])).json.errors,
        false,
      );
      let r = await bulk(es.url, [{ update: { _index: 'pm-1', _id: '1' } }, { doc: { o: { y: 'new' } } }]);
      assert.equal(r.json.items[0].update.error.type, 'strict_dynamic_mapping_exception', 'strict before the mapping is added');
      r = await call(es.url, 'PUT', '/pm-*/_mapping', { body: JSON.stringify({ properties: { o: { properties: { y: { type: 'keyword' } } } } }) });
      assert.deepEqual([r.status, r.json], [200, { acknowledged: true }]);
      for (const idx of ['pm-1', 'pm-2']) {
        const m = (await call(es.url, 'GET', `/${idx}/_mapping`)).json[idx].mappings.properties;
        assert.deepEqual(m.o.properties, { x: { type: 'long' }, y: { type: 'keyword' } }, idx);
      }
      r = await bulk(es.url, [{ update: { _index: 'pm-1', _id: '1' } }, { doc: { o: { y: 'new' } } }]);
      assert.equal(r.json.errors, false);
      r = await call(es.url, 'PUT', '/pm-*/_mapping', { body: JSON.stringify({ properties: { a: { type: 'long' } } }) });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.reason, 'mapper [a] cannot be changed from type [keyword] to [long]');
      assert.equal((await call(es.url, 'PUT', '/none-*/_mapping', { body: JSON.stringify({ properties: { z: { type: 'keyword' } } }) })).status, 200);
      assert.equal((await call(es.url, 'PUT', '/missing/_mapping', { body: JSON.stringify({ properties: { z: { type: 'keyword' } } }) })).status, 404);
    });
  });

  test('dynamic mapping without a template: text+keyword, long, float, boolean, date detection, object', async () => {
    await withServer({}, async (es) => {
      await bulk(es.url, [
        { index: { _index: 'dyn', _id: '1' } },
        { s: 'hello', n: 1, f: 1.5, b: true, d: '2024-01-02T03:04:05Z', o: { inner: 'x' }, nothing: null },
      ]);
      const p = (await call(es.url, 'GET', '/dyn/_mapping')).json.dyn.mappings.properties;
      assert.deepEqual(p.s, { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 256 } } });
      assert.deepEqual(p.n, { type: 'long' });
      assert.deepEqual(p.f, { type: 'float' });
      assert.deepEqual(p.b, { type: 'boolean' });
      assert.deepEqual(p.d, { type: 'date' });
      assert.equal(p.o.properties.inner.type, 'text');
      assert.equal(p.nothing, undefined);
      // The dynamic mapping now binds later documents.
      const r = await bulk(es.url, [{ index: { _index: 'dyn', _id: '2' } }, { n: 'not a number' }]);
      assert.equal(r.json.items[0].index.status, 400);
      assert.equal(r.json.items[0].index.error.type, 'document_parsing_exception');
    });
  });
});

describe('bulk', () => {
  test('create, then 409 for the same id; index replaces; auto ids; items in order, one failure spares the rest', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      let r = await bulk(es.url, [{ create: { _index: 'idx', _id: 'a' } }, { m: 1 }, { create: { _index: 'idx' } }, { m: 2 }]);
      assert.equal(r.status, 200);
      assert.match(r.text, /^\{"errors":false,"took":\d+,"items":\[/); // Elasticsearch 8 prints errors before took
      const [a, auto] = r.json.items.map((i: { create: unknown }) => i.create);
      assert.deepEqual(Object.keys(a), ['_index', '_id', '_version', 'result', '_shards', '_seq_no', '_primary_term', 'status']);
      assert.deepEqual(a, {
        _index: 'idx',
        _id: 'a',
        _version: 1,
        result: 'created',
        _shards: { total: 2, successful: 1, failed: 0 },
        _seq_no: 0,
        _primary_term: 1,
        status: 201,
      });
      assert.match(auto._id, /^[A-Za-z0-9_-]{20}$/);
      assert.equal(auto._seq_no, 1);

      r = await bulk(es.url, [
        { create: { _index: 'idx', _id: 'a' } },
        { m: 'again' },
        { create: { _index: 'idx', _id: 'b' } },
        { m: 3 },
        { index: { _index: 'idx', _id: 'a' } },
        { m: 4 },
        { delete: { _index: 'idx', _id: 'b' } },
        { delete: { _index: 'idx', _id: 'nope' } },
      ]);
      assert.equal(r.json.errors, true);
      const items = r.json.items;
      assert.equal(items.length, 5);
      assert.deepEqual(items[0].create.status, 409);
      assert.equal(items[0].create.error.type, 'version_conflict_engine_exception');
      assert.equal(items[0].create.error.reason, '[a]: version conflict, document already exists (current version [1])');
      assert.equal(items[0].create.error.index, 'idx');
      assert.equal(items[0].create.error.shard, '0');
      assert.equal(typeof items[0].create.error.index_uuid, 'string');
      assert.equal(items[1].create.status, 201);
      assert.equal(items[2].index.status, 200);
      assert.equal(items[2].index.result, 'updated');
      assert.equal(items[2].index._version, 2);
      assert.equal(items[3].delete.result, 'deleted');
      assert.equal(items[4].delete.status, 404);
      assert.equal(items[4].delete.result, 'not_found');
      assert.equal(items[4].delete.error, undefined);
      const stats = es.stats();
      assert.deepEqual(stats.indices, { idx: 2 });
      assert.equal(stats.conflicts, 1);
    });
  });

  test('OpenSearch prints took before errors', async () => {
    await withServer({ flavor: 'opensearch' }, async (es) => {
      const r = await bulk(es.url, [{ create: { _index: 'o', _id: '1' } }, { a: 1 }]);
      assert.match(r.text, /^\{"took":\d+,"errors":false,"items":\[/);
    });
  });

  test("a mapping conflict is item-level 400 with the flavor's exception type", async () => {
    const mappings = {
      properties: { ts: { type: 'date' }, n: { type: 'long' }, k: { type: 'keyword' }, ip: { type: 'ip' }, obj: { properties: { a: { type: 'keyword' } } } },
    };
    for (const flavor of ['elasticsearch', 'opensearch'] as const) {
      await withServer({ flavor }, async (es) => {
        await call(es.url, 'PUT', '/_index_template/t', { body: JSON.stringify({ index_patterns: ['m-*'], template: { mappings } }) });
        const r = await bulk(es.url, [
          { create: { _index: 'm-1', _id: 'd1' } },
          { ts: 'yesterday' },
          { create: { _index: 'm-1', _id: 'd2' } },
          { n: 'abc' },
          { create: { _index: 'm-1', _id: 'd3' } },
          { k: { nested: true } },
          { create: { _index: 'm-1', _id: 'd4' } },
          { ip: 'not-an-ip' },
          { create: { _index: 'm-1', _id: 'd5' } },
          { obj: 'scalar' },
          { create: { _index: 'm-1', _id: 'ok' } },
          { ts: 1714557600000, n: '42', k: 7, ip: '::1', obj: { a: 'x' } },
        ]);
        assert.equal(r.status, 200);
        assert.equal(r.json.errors, true);
        const [d1, d2, d3, d4, d5, ok] = r.json.items.map(
          (i: { create: { status: number; error?: { type: string; reason: string; caused_by?: { type: string; reason: string } } } }) => i.create,
        );
        const type = flavor === 'elasticsearch' ? 'document_parsing_exception' : 'mapper_parsing_exception';
        const at = (col: number) => (flavor === 'elasticsearch' ? `[1:${col}] ` : '');
        for (const d of [d1, d2, d3, d4, d5]) {
          assert.equal(d.status, 400);
          assert.equal(d.error!.type, type);
        }
        assert.equal(d1.error!.reason, `${at(7)}failed to parse field [ts] of type [date] in document with id 'd1'. Preview of field's value: 'yesterday'`);
        assert.equal(d1.error!.caused_by!.type, 'illegal_argument_exception');
        assert.equal(d1.error!.caused_by!.reason, 'failed to parse date field [yesterday] with format [strict_date_optional_time||epoch_millis]');
        assert.equal(d2.error!.reason, `${at(6)}failed to parse field [n] of type [long] in document with id 'd2'. Preview of field's value: 'abc'`);
        assert.equal(d2.error!.caused_by!.reason, 'For input string: "abc"');
        assert.equal(
          d3.error!.reason,
          `${at(6)}failed to parse field [k] of type [keyword] in document with id 'd3'. Preview of field's value: '{nested=true}'`,
        );
        assert.equal(d3.error!.caused_by!.type, 'illegal_state_exception');
        assert.equal(d3.error!.caused_by!.reason, "Can't get text on a START_OBJECT at 1:6");
        assert.equal(d4.error!.caused_by!.reason, "'not-an-ip' is not an IP string literal.");
        assert.equal(d5.error!.reason, `${at(8)}object mapping for [obj] tried to parse field [obj] as object, but found a concrete value`);
        assert.equal(ok.status, 201);
      });
    }
  });

  test('the body must end with a newline; bad action lines fail the whole request', async () => {
    await withServer({}, async (es) => {
      let r = await call(es.url, 'POST', '/_bulk', { body: '{"create":{"_index":"a","_id":"1"}}\n{"x":1}', headers: NDJSON });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.type, 'illegal_argument_exception');
      assert.equal(r.json.error.reason, 'The bulk request must be terminated by a newline [\\n]');
      r = await call(es.url, 'POST', '/_bulk', { body: '{"create":{"_id":"1"}}\n{"x":1}\n', headers: NDJSON });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.type, 'action_request_validation_exception');
      assert.equal(r.json.error.reason, 'Validation Failed: 1: index is missing;');
      r = await call(es.url, 'POST', '/_bulk', { body: '{"upsert":{"_index":"a"}}\n{"x":1}\n', headers: NDJSON });
      assert.equal(r.status, 400);
      assert.match(
        r.json.error.reason,
        /Malformed action\/metadata line \[1\], expected field \[create\], \[delete\], \[index\] or \[update\] but found \[upsert\]/,
      );
      r = await call(es.url, 'POST', '/_bulk', { body: '{"create":{"_index":"a","_type":"_doc"}}\n{"x":1}\n', headers: NDJSON });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.reason, 'Action/metadata line [1] contains an unknown parameter [_type]');
      // POST /<index>/_bulk supplies the index.
      r = await call(es.url, 'POST', '/dflt/_bulk', { body: '{"create":{"_id":"1"}}\n{"x":1}\n', headers: NDJSON });
      assert.equal(r.json.items[0].create._index, 'dflt');
      assert.equal(es.stats().docs, 1);
    });
  });

  test('request body over http.max_content_length is 413 (nothing applied)', async () => {
    await withServer({ maxContentLength: '1kb' }, async (es) => {
      const big = ndjson(Array.from({ length: 40 }, (_, i) => (i % 2 ? { pad: 'x'.repeat(40) } : { create: { _index: 'big' } })));
      assert.ok(big.length > 1024);
      const r = await call(es.url, 'POST', '/_bulk', { body: big, headers: NDJSON });
      assert.equal(r.status, 413);
      assert.equal(r.text, '');
      assert.equal(es.stats().docs, 0);
      assert.equal(es.stats().rejected413, 1);
      const small = await bulk(es.url, [{ create: { _index: 'big' } }, { a: 1 }]);
      assert.equal(small.status, 200);
    });
  });

  test('a gzip request body is accepted', async () => {
    await withServer({}, async (es) => {
      const body = zlib.gzipSync(ndjson([{ create: { _index: 'gz', _id: '1' } }, { a: 1 }]));
      const r = await call(es.url, 'POST', '/_bulk', { body, headers: { ...NDJSON, 'content-encoding': 'gzip' } });
      assert.equal(r.status, 200);
      assert.equal(r.json.items[0].create.status, 201);
    });
  });
});

describe('other document APIs', () => {
  test('update (doc, noop, upsert), single-document index/create/get/delete, versions across delete', async () => {
    await withServer({ refresh: 'immediate' }, async (es) => {
      await bulk(es.url, [{ index: { _index: 'u', _id: '1' } }, { a: 1, o: { x: 1 } }]);
      const r = await bulk(es.url, [
        { update: { _index: 'u', _id: '1' } },
        { doc: { o: { y: 2 } } },
        { update: { _index: 'u', _id: '1' } },
        { doc: { o: { y: 2 } } },
        { update: { _index: 'u', _id: '2' } },
        { doc: { a: 2 } },
        { update: { _index: 'u', _id: '2' } },
        { doc: { a: 2 }, doc_as_upsert: true },
      ]);
      assert.deepEqual(
        r.json.items.map((i: { update: { status: number; result?: string } }) => `${i.update.status} ${i.update.result ?? ''}`),
        ['200 updated', '200 noop', '404 ', '201 created'],
      );
      assert.equal(r.json.items[2].update.error.type, 'document_missing_exception');
      let g = await call(es.url, 'GET', '/u/_doc/1');
      assert.deepEqual(g.json._source, { a: 1, o: { x: 1, y: 2 } });
      assert.equal(g.json._version, 2);
      assert.equal((await call(es.url, 'GET', '/u/_doc/nope')).json.found, false);
      let p = await call(es.url, 'PUT', '/u/_doc/7', { body: '{"n":7}' });
      assert.equal(p.status, 201);
      assert.equal(p.json.result, 'created');
      p = await call(es.url, 'PUT', '/u/_create/7', { body: '{"n":7}' });
      assert.equal(p.status, 409);
      assert.equal(p.json.error.type, 'version_conflict_engine_exception');
      p = await call(es.url, 'DELETE', '/u/_doc/7');
      assert.equal(p.json.result, 'deleted');
      p = await call(es.url, 'PUT', '/u/_doc/7', { body: '{"n":7}' });
      assert.equal(p.json._version, 3); // versions continue after a delete
      g = await call(es.url, 'GET', '/u/_doc/7');
      assert.equal(g.json.found, true);
    });
  });

  test('dotted field names, arrays of objects and dynamic_templates map as Elasticsearch does', async () => {
    await withServer({}, async (es) => {
      const tmpl = {
        index_patterns: ['dt*'],
        template: { mappings: { dynamic_templates: [{ strings: { match_mapping_type: 'string', mapping: { type: 'keyword' } } }] } },
      };
      await call(es.url, 'PUT', '/_index_template/dt', { body: JSON.stringify(tmpl) });
      await bulk(es.url, [{ index: { _index: 'dt1', _id: '1' } }, { 'a.b': 'x', arr: [{ k: 1 }, { k: 2, j: 'y' }], when: '2024-05-01T00:00:00Z' }]);
      const p = (await call(es.url, 'GET', '/dt1/_mapping')).json.dt1.mappings.properties;
      assert.deepEqual(p.a, { properties: { b: { type: 'keyword' } } });
      assert.deepEqual(p.arr, { properties: { k: { type: 'long' }, j: { type: 'keyword' } } });
      assert.deepEqual(p.when, { type: 'date' }); // date detection comes before a 'string' dynamic template
      const r = await bulk(es.url, [{ index: { _index: 'dt1', _id: '2' } }, { arr: [{ k: 3 }, { k: 'zz' }] }]);
      assert.equal(
        r.json.items[0].index.error.reason,
        "[1:22] failed to parse field [arr.k] of type [long] in document with id '2'. Preview of field's value: 'zz'",
      );
    });
  });
});

describe('fault injection', () => {
  test('item429Every: every Nth item is rejected with an item-level 429 and not stored', async () => {
    for (const flavor of ['elasticsearch', 'opensearch'] as const) {
      await withServer({ flavor }, async (es) => {
        const r0 = await call(es.url, 'POST', '/_test/faults', { body: JSON.stringify({ item429Every: 3 }) });
        assert.equal(r0.json.item429Every, 3);
        const lines = Array.from({ length: 7 }, (_, i) => [{ create: { _index: 'f', _id: `d${i + 1}` } }, { i }]).flat();
        const r = await bulk(es.url, lines);
        assert.equal(r.status, 200);
        assert.equal(r.json.errors, true);
        const statuses = r.json.items.map((i: { create: { status: number } }) => i.create.status);
        assert.deepEqual(statuses, [201, 201, 429, 201, 201, 429, 201]);
        assert.equal(r.json.items[2].create.error.type, flavor === 'elasticsearch' ? 'es_rejected_execution_exception' : 'rejected_execution_exception');
        const s = es.stats();
        assert.equal(s.indices.f, 5);
        assert.equal(s.items429, 2);
        // Retrying the rejected ones (now at positions 1 and 2 of a new request) succeeds.
        const retry = await bulk(es.url, [{ create: { _index: 'f', _id: 'd3' } }, { i: 2 }, { create: { _index: 'f', _id: 'd6' } }, { i: 5 }]);
        assert.equal(retry.json.errors, false);
      });
    }
  });

  test('bulk429 / bulk503: whole requests refused N times, nothing applied', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      es.setFaults({ bulk429: 2, bulk503: 1 });
      const lines = [{ create: { _index: 'w', _id: '1' } }, { a: 1 }];
      let r = await bulk(es.url, lines);
      assert.equal(r.status, 503);
      assert.equal(r.json.status, 503);
      assert.equal(typeof r.json.error.type, 'string');
      r = await bulk(es.url, lines);
      assert.equal(r.status, 429);
      assert.equal(r.json.error.type, 'es_rejected_execution_exception');
      assert.equal(r.json.error.root_cause[0].type, 'es_rejected_execution_exception');
      assert.equal(r.json.status, 429);
      r = await bulk(es.url, lines);
      assert.equal(r.status, 429);
      assert.equal(es.stats().docs, 0);
      r = await bulk(es.url, lines);
      assert.equal(r.status, 200);
      const s = es.stats();
      assert.equal(s.rejected429, 2);
      assert.equal(s.rejected503, 1);
      assert.equal(s.bulkRequests, 4);
      assert.equal(s.docs, 1);
    });
  });

  test('resetNext: the client sees a socket error; with resetAfterApply the documents were stored', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      const lines = [{ create: { _index: 'r', _id: '1' } }, { a: 1 }, { create: { _index: 'r', _id: '2' } }, { a: 2 }];
      es.setFaults({ resetNext: 1 });
      await assert.rejects(bulk(es.url, lines), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' || /socket hang up/.test(e.message));
      assert.equal(es.stats().docs, 0);
      assert.equal(es.stats().resets, 1);

      es.setFaults({ resetNext: 1, resetAfterApply: true });
      await assert.rejects(bulk(es.url, lines), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' || /socket hang up/.test(e.message));
      assert.equal(es.stats().indices.r, 2);
      // The client retries: the documents are already there, so create answers 409 — which is why ids must be deterministic.
      const r = await bulk(es.url, lines);
      assert.deepEqual(
        r.json.items.map((i: { create: { status: number } }) => i.create.status),
        [409, 409],
      );
      assert.equal(es.stats().resets, 2);
    });
  });

  test('delayMs slows bulk answers; in-flight maximum and maxConcurrentBulk are recorded', async () => {
    await withServer({}, async (es) => {
      await call(es.url, 'POST', '/_test/faults', { body: JSON.stringify({ delayMs: 150, maxConcurrentBulk: 2 }) });
      const t0 = Date.now();
      const rs = await Promise.all([1, 2, 3].map((k) => bulk(es.url, [{ create: { _index: 'c', _id: String(k) } }, { k }])));
      assert.ok(Date.now() - t0 >= 140);
      assert.ok(rs.every((r) => r.status === 200));
      const s = (await call(es.url, 'GET', '/_test/stats')).json;
      assert.equal(s.maxInFlight, 3);
      assert.equal(s.maxConcurrentBulk, 2);
      assert.equal(s.concurrencyExceeded, 1);
      assert.equal(s.inFlight, 0);
      assert.equal(s.docs, 3);
      assert.equal(s.requests, 3, 'the bulk requests (not /_test)');
      const reset = await call(es.url, 'POST', '/_test/reset');
      assert.equal(reset.status, 200);
      const after = (await call(es.url, 'GET', '/_test/stats')).json;
      assert.equal(after.docs, 0);
      assert.equal(after.faults.delayMs, 0);
      assert.equal(after.bulkRequests, 0);
    });
  });

  test('requests are counted by what they ask: cluster info, template and mapping PUTs, privilege checks', async () => {
    await withServer({ flavor: 'elasticsearch', auth: { users: [{ username: 'u', password: 'p' }] } }, async (es) => {
      const auth = { authorization: `Basic ${Buffer.from('u:p').toString('base64')}` };
      await call(es.url, 'GET', '/', { headers: auth });
      await call(es.url, 'HEAD', '/', { headers: auth });
      await call(es.url, 'GET', '/'); // 401: still a request that arrived
      assert.equal((await call(es.url, 'PUT', '/_index_template/t', { headers: auth, body: JSON.stringify({ index_patterns: ['t-*'] }) })).status, 200);
      await call(es.url, 'GET', '/_index_template/t', { headers: auth });
      await call(es.url, 'PUT', '/t-*/_mapping', { headers: auth, body: JSON.stringify({ properties: { a: { type: 'keyword' } } }) });
      assert.equal(
        (
          await call(es.url, 'POST', '/_security/user/_has_privileges', {
            headers: auth,
            body: JSON.stringify({ index: [{ names: ['t-*'], privileges: ['create_doc'] }] }),
          })
        ).status,
        200,
      );
      const s = es.stats();
      assert.deepEqual([s.requests, s.rootInfo, s.templatePuts, s.mappingPuts, s.privilegeChecks], [7, 3, 1, 1, 1]);
      es.reset();
      assert.deepEqual([es.stats().requests, es.stats().rootInfo], [0, 0]);
    });
  });
});

describe('refresh, _count, _search, _cat, delete', () => {
  const docs = [
    { '@timestamp': '2024-05-01T10:00:00Z', user: { name: 'alice' }, rows: 5, action: 'select', msg: 'Read the Orders table' },
    { '@timestamp': '2024-05-02T10:00:00Z', user: { name: 'bob' }, rows: 50, action: 'update', msg: 'update orders set x' },
    { '@timestamp': '2024-05-03T10:00:00Z', user: { name: 'alice' }, rows: 500, action: 'delete', msg: 'delete from customers' },
    { '@timestamp': '2024-06-01T10:00:00Z', user: { name: 'carol' }, rows: 0, action: 'select', msg: 'select now()' },
  ];
  const mappings = {
    properties: {
      '@timestamp': { type: 'date' },
      user: { properties: { name: { type: 'keyword' } } },
      rows: { type: 'long' },
      action: { type: 'keyword' },
      msg: { type: 'text' },
    },
  };

  async function load(es: EsServerHandle): Promise<void> {
    await call(es.url, 'PUT', '/_index_template/q', {
      body: JSON.stringify({ index_patterns: ['q-*'], template: { settings: { 'index.refresh_interval': '-1' }, mappings } }),
    });
    const lines = docs.flatMap((d, i) => [{ create: { _index: `q-${d['@timestamp'].slice(0, 7)}`, _id: `e${i + 1}` } }, d]);
    const r = await bulk(es.url, lines);
    assert.equal(r.json.errors, false);
  }

  test('documents are searchable only after a refresh (refresh_interval -1 here)', async () => {
    await withServer({}, async (es) => {
      await load(es);
      assert.equal((await call(es.url, 'GET', '/q-*/_count')).json.count, 0);
      assert.equal((await call(es.url, 'GET', '/q-2024-05/_doc/e1')).json.found, true); // GET is real time
      const rr = await call(es.url, 'POST', '/q-*/_refresh');
      assert.equal(rr.status, 200);
      assert.equal(rr.json._shards.failed, 0);
      const c = await call(es.url, 'GET', '/q-*/_count');
      assert.deepEqual(c.json, { count: 4, _shards: { total: 2, successful: 2, skipped: 0, failed: 0 } });
    });
    await withServer({ refresh: 'immediate' }, async (es) => {
      await load(es);
      assert.equal((await call(es.url, 'GET', '/q-*/_count')).json.count, 4);
    });
  });

  test('without an explicit refresh_interval, writes become visible at the next 1s scheduled refresh', async () => {
    await withServer({}, async (es) => {
      await bulk(es.url, [{ create: { _index: 'nrt', _id: '1' } }, { a: 1 }]);
      const before = (await call(es.url, 'GET', '/nrt/_count')).json.count;
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await call(es.url, 'GET', '/nrt/_count')).json.count, 1);
      assert.ok(before === 0 || before === 1); // 1 only when a tick fell between the write and the count
      const r = await bulk(es.url, [{ create: { _index: 'nrt', _id: '2' } }, { a: 2 }], '?refresh=wait_for');
      assert.equal(r.json.items[0].create.forced_refresh, undefined);
      assert.equal((await call(es.url, 'GET', '/nrt/_count')).json.count, 2);
    });
  });

  test('_count and _search with term, terms, range, bool, sort, from/size', async () => {
    await withServer({}, async (es) => {
      await load(es);
      await bulk(es.url, [{ create: { _index: 'q-2024-06', _id: 'e9' } }, { user: { name: 'dave' }, rows: 1 }], '?refresh=true');
      await call(es.url, 'POST', '/q-*/_refresh');
      const count = async (query: unknown) => (await call(es.url, 'POST', '/q-*/_count', { body: JSON.stringify({ query }) })).json.count as number;
      assert.equal(await count({ match_all: {} }), 5);
      assert.equal(await count({ term: { 'user.name': 'alice' } }), 2);
      assert.equal(await count({ term: { 'user.name': { value: 'Alice' } } }), 0); // keyword: exact
      assert.equal(await count({ term: { msg: 'orders' } }), 2); // text: analyzed tokens
      assert.equal(await count({ term: { msg: 'Orders' } }), 0); // term is not analyzed
      assert.equal(await count({ terms: { action: ['select', 'delete'] } }), 3);
      assert.equal(await count({ range: { rows: { gte: 5, lt: 500 } } }), 2);
      assert.equal(await count({ range: { '@timestamp': { gte: '2024-05-02', lte: '2024-05-31' } } }), 2);
      assert.equal(await count({ range: { '@timestamp': { gte: '2024-05-01T00:00:00Z||+1d/d' } } }), 3);
      assert.equal(await count({ bool: { filter: [{ term: { action: 'select' } }], must_not: [{ term: { 'user.name': 'carol' } }] } }), 1);
      assert.equal(await count({ exists: { field: '@timestamp' } }), 4);
      assert.equal(await count({ term: { unmapped_field: 'x' } }), 0);

      let r = await call(es.url, 'POST', '/q-*/_search', {
        body: JSON.stringify({ query: { term: { 'user.name': 'alice' } }, sort: [{ '@timestamp': 'desc' }] }),
      });
      assert.equal(r.status, 200);
      assert.equal(r.json.timed_out, false);
      assert.deepEqual(r.json.hits.total, { value: 2, relation: 'eq' });
      assert.deepEqual(
        r.json.hits.hits.map((h: { _id: string }) => h._id),
        ['e3', 'e1'],
      );
      assert.equal(r.json.hits.hits[0]._index, 'q-2024-05');
      assert.deepEqual(r.json.hits.hits[0]._source, docs[2]);
      assert.deepEqual(r.json.hits.hits[0].sort, [Date.parse('2024-05-03T10:00:00Z')]);
      r = await call(es.url, 'POST', '/q-*/_search', { body: JSON.stringify({ size: 2, from: 1, sort: ['rows'] }) });
      assert.deepEqual(
        r.json.hits.hits.map((h: { _source: { rows: number } }) => h._source.rows),
        [1, 5],
      );
      assert.equal(r.json.hits.total.value, 5);
      r = await call(es.url, 'GET', '/q-*/_search?size=0');
      assert.equal(r.json.hits.hits.length, 0);
      assert.equal(r.json.hits.total.value, 5);
      r = await call(es.url, 'POST', '/q-*/_search', { body: JSON.stringify({ sort: [{ msg: 'asc' }] }) });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.root_cause[0].type, 'illegal_argument_exception');
      assert.match(r.json.error.root_cause[0].reason, /^Fielddata is disabled on \[msg\]/);
      r = await call(es.url, 'POST', '/q-*/_search', { body: JSON.stringify({ from: 9995, size: 10 }) });
      assert.equal(r.status, 400);
      assert.match(r.json.error.root_cause[0].reason, /^Result window is too large/);
      r = await call(es.url, 'GET', '/nope/_search');
      assert.equal(r.status, 404);
      assert.equal(r.json.error.type, 'index_not_found_exception');
      assert.equal(r.json.error.reason, 'no such index [nope]');
      r = await call(es.url, 'GET', '/nope-*/_count');
      assert.equal(r.json.count, 0);
    });
  });

  test('_cat/indices, DELETE with and without wildcards', async () => {
    await withServer({ flavor: 'elasticsearch' }, async (es) => {
      await load(es);
      await call(es.url, 'POST', '/_refresh');
      const cat = await call(es.url, 'GET', '/_cat/indices?format=json');
      assert.equal(cat.status, 200);
      const byName = Object.fromEntries(cat.json.map((r: { index: string; 'docs.count': string }) => [r.index, r['docs.count']]));
      assert.deepEqual(byName, { 'q-2024-05': '3', 'q-2024-06': '1' }); // cat values are strings
      const text = await call(es.url, 'GET', '/_cat/indices?v&h=index,docs.count&s=index');
      assert.match(text.text, /^index\s+docs\.count\nq-2024-05\s+3\nq-2024-06\s+1\n$/);
      let r = await call(es.url, 'DELETE', '/q-*');
      assert.equal(r.status, 400); // action.destructive_requires_name defaults to true on Elasticsearch 8
      assert.equal(r.json.error.reason, 'Wildcard expressions or all indices are not allowed');
      r = await call(es.url, 'DELETE', '/q-2024-06');
      assert.deepEqual(r.json, { acknowledged: true });
      r = await call(es.url, 'DELETE', '/q-2024-06');
      assert.equal(r.status, 404);
      assert.deepEqual(Object.keys(es.stats().indices), ['q-2024-05']);
    });
    await withServer({ flavor: 'opensearch' }, async (es) => {
      await load(es);
      const r = await call(es.url, 'DELETE', '/q-*');
      assert.deepEqual(r.json, { acknowledged: true });
      assert.equal(es.stats().docs, 0);
    });
  });
});

describe('as a child process', () => {
  let es: Awaited<ReturnType<typeof spawnEsServer>>;
  before(async () => {
    es = await spawnEsServer({ flavor: 'opensearch', version: '3.1.0' });
  });
  after(async () => {
    await es.stop();
  });

  test('spawnEsServer: listens, keeps state, takes control commands, stops', async () => {
    const root = await call(es.url, 'GET', '/');
    assert.equal(root.json.version.number, '3.1.0');
    await es.faults({ item429Every: 2 });
    const r = await bulk(es.url, [{ create: { _index: 'p', _id: '1' } }, { a: 1 }, { create: { _index: 'p', _id: '2' } }, { a: 2 }]);
    assert.deepEqual(
      r.json.items.map((i: { create: { status: number } }) => i.create.status),
      [201, 429],
    );
    const s = await es.stats();
    assert.equal(s.docs, 1);
    assert.equal(s.items429, 1);
    await es.reset();
    assert.equal((await es.stats()).docs, 0);
  });
});
