// Writes auditship.example.yaml and docs/configuration.md from the config schema.
import { mkdirSync, writeFileSync } from 'node:fs';
import { renderConfigDocs, renderExampleConfig } from '../src/config/render.js';

const root = new URL('..', import.meta.url).pathname;
mkdirSync(`${root}docs`, { recursive: true });
writeFileSync(`${root}auditship.example.yaml`, renderExampleConfig());
writeFileSync(`${root}docs/configuration.md`, renderConfigDocs());
console.log('wrote auditship.example.yaml and docs/configuration.md');
