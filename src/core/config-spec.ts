/**
 * The vocabulary every connector uses to describe its config keys (a key's type, default, description), and
 * the typed options a validated section decodes to.
 *
 * Each source and sink folder declares its keys once, in its `config.ts`, `as const satisfies ConnectorSpec`;
 * from that one literal come the validation (config/load.ts), the generated docs and example config
 * (config/render.ts) and, through `Options<typeof SPEC>`, the TypeScript type of the decoded section, so that
 * a job reads `source.batch_rows` as a number whose default was filled by the loader, never `?? 40000`.
 *
 * Why typed decoders of our own rather than zod or valibot: the spec is also the documentation (descriptions,
 * examples, units), which a zod schema would carry only as metadata; sizes (`16MB`), URL checks that never
 * echo a password and `${VAR}` interpolation are ours anyway; and the loader reports every problem at once, one
 * line per key, which is what it did before. The type-level part is about forty lines.
 */
export type FieldType = 'string' | 'integer' | 'boolean' | 'enum' | 'string_or_list' | 'size' | 'url';

export interface FieldSpec {
  type: FieldType;
  description: string;
  default?: string | number | boolean | readonly string[];
  required?: boolean;
  /** Allowed values for `enum`. */
  values?: readonly string[];
  /** Allowed URL schemes for `url` (without `://`), e.g. postgres, postgresql. */
  schemes?: readonly string[];
  /** Shown in the example config instead of the default. */
  example?: string | number | boolean;
  minimum?: number;
}

export type ObjectSpec = Readonly<Record<string, FieldSpec>>;

export interface ConnectorSpec {
  kind: string;
  description: string;
  fields: ObjectSpec;
}

/** The URL schemes of PostgreSQL connections (what `pg` and libpq read). */
export const PG_SCHEMES = ['postgres', 'postgresql'] as const;
/** PostgreSQL or MariaDB/MySQL (src/sources/sql/client.ts dialectOf). */
export const SQL_SCHEMES = [...PG_SCHEMES, 'mysql', 'mariadb'] as const;

/** The decoded value of one key: sizes are bytes, a path or list is a list, an enum its literal union. */
export type FieldValue<F> = F extends { type: 'enum'; values: readonly (infer V)[] }
  ? V
  : F extends { type: 'integer' | 'size' }
    ? number
    : F extends { type: 'boolean' }
      ? boolean
      : F extends { type: 'string_or_list' }
        ? string[]
        : string;

/** Keys that always have a value after decoding: required ones and those with a default. */
type AlwaysSet<F extends ObjectSpec> = { [K in keyof F]: F[K] extends { required: true } | { default: unknown } ? K : never }[keyof F];

type Flatten<T> = { [K in keyof T]: T[K] };

/** The decoded, typed section of a connector spec (what config/load.ts produces for it). */
export type Options<S extends ConnectorSpec> = Flatten<
  { readonly type: S['kind'] } & { readonly [K in AlwaysSet<S['fields']>]: FieldValue<S['fields'][K]> } & {
    readonly [K in Exclude<keyof S['fields'], AlwaysSet<S['fields']>>]?: FieldValue<S['fields'][K]>;
  }
>;

/** The decoded value of a top-level section (ui, metrics) described by an ObjectSpec. */
export type SectionOptions<F extends ObjectSpec> = Flatten<
  { readonly [K in AlwaysSet<F>]: FieldValue<F[K]> } & { readonly [K in Exclude<keyof F, AlwaysSet<F>>]?: FieldValue<F[K]> }
>;
