import { decodeSink } from '../../src/config/load.js';
import type { SinkConfigOf, SinkType } from '../../src/connectors.js';
import { ConfigError } from '../../src/core/errors.js';

/**
 * One key of a decoded config section, by name. The loader's sections are typed per connector (a union narrowed on
 * `type`); a test that checks what the loader made of a key reads it here without narrowing first.
 */
export function field(section: object, key: string): unknown {
  return (section as Record<string, unknown>)[key];
}

/** A sink section decoded as the config loader decodes it (validated, defaults filled); throws on a problem. */
export function sinkSection<K extends SinkType>(raw: { type: K } & Record<string, unknown>): SinkConfigOf<K> {
  const problems: string[] = [];
  const sink = decodeSink(raw, 'sink', problems);
  if (problems.length || !sink) throw new ConfigError(problems);
  return sink as SinkConfigOf<K>;
}
