export async function handler(_event: unknown, _context: unknown): Promise<{ ok: boolean }> { return { ok: true }; }
