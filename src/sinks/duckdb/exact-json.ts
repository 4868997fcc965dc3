/**
 * Query results as JSON values a reader takes at their word: integers (BIGINT, HUGEINT and their unsigned
 * kinds — count(*), sum()) as JSON numbers while a double holds them exactly (|n| ≤ 2^53 − 1), else as
 * strings; DECIMALs as numbers up to 15 significant digits (a double gives those back digit for digit), else
 * as their exact text. Everything else as DuckDB's JSON conversion has it (times as text, NaN as a string).
 * (DuckDB's own conversion, getRowsJson, gives every BIGINT as a string.)
 */
import type { DuckDBDecimalValue, DuckDBResultReader, DuckDBValueConverter, Json } from '@duckdb/node-api';
import { DuckDBTypeId, JsonDuckDBValueConverter } from '../../duckdb/duckdb.js';

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
/** DBL_DIG: decimals of at most this many significant digits survive a trip through a double. */
const DOUBLE_DIGITS = 15;

const exactJson: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT: {
      const n = value as bigint;
      return n >= -MAX_EXACT && n <= MAX_EXACT ? Number(n) : n.toString();
    }
    case DuckDBTypeId.DECIMAL: {
      const d = value as DuckDBDecimalValue;
      const digits = (d.value < 0n ? -d.value : d.value).toString().replace(/0+$/, '').length;
      return digits <= DOUBLE_DIGITS ? Number(d.toString()) : d.toString();
    }
    default:
      // Lists, structs and maps come back here for their elements.
      return JsonDuckDBValueConverter(value, type, converter);
  }
};

/** The rows of a result as arrays of JSON values (see above). */
export function jsonRows(result: DuckDBResultReader): (Json | null)[][] {
  return result.convertRows(exactJson);
}
