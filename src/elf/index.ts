/*
 * The ELF engine's public surface: import from here (`../elf/index.js`), not from the files behind it.
 */
export * from './build-id.js';
export * from './constants.js';
export { ElfFile, withElfFile } from './file.js';
export { type RawSectionHeader, readHeaders } from './headers.js';
export * from './model.js';
export { parseNotes } from './notes.js';
export { readElf, readElfFile } from './reader.js';
export { buildStringTable, type StringTable } from './string-table.js';
export * from './symbol-index.js';
export * from './writer.js';
