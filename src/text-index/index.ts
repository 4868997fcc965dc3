/**
 * The text index: which blocks of stored events may contain a free-text term, so that a search reads only
 * those (README "Free-text search"). grams.ts says what a trigram is and how a term and a statement become
 * bits; blocks.ts groups stored rows into blocks with their time range and bitmap. The DuckDB store keeps the
 * blocks (sinks/duckdb/text-index.ts); the queries ask it (query/queries.ts, textRanges).
 */
export { addGrams, BITMAP_BITS, BITMAP_BYTES, bitCondition, hasAll, termBits } from './grams.js';
export { BLOCK_ROWS, BlockBuilder, type TextBlock } from './blocks.js';
