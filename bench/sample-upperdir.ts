// Upperdirs for the commit figures, shaped like real layers: large incompressible files (binaries,
// archives) and compressible text (sources, configs, docs); the 200 MB one also has many small files.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { seededRandom } from '../src/util/seeded-random.js';

const MB = 1e6;
const RANDOM_FILES = 4;
const RANDOM_FILE_BYTES = 25 * MB;
const TEXT_DIRS = 40;
const TEXT_FILES_PER_DIR = 50;
const TEXT_FILE_BYTES = 50_000;
const CORPUS_BYTES = 4 * MB;

export interface SampleUpperdir {
  bytes: number;
  files: number;
}

export async function makeSampleUpperdir(dir: string): Promise<SampleUpperdir> {
  const random = seededRandom(0x5742a7a);
  await mkdir(path.join(dir, 'opt/app'), { recursive: true });
  for (let i = 0; i < RANDOM_FILES; i++) {
    await writeFile(path.join(dir, 'opt/app', `blob-${i}.bin`), randomBytes(RANDOM_FILE_BYTES));
  }
  const corpus = textCorpus(random);
  for (let d = 0; d < TEXT_DIRS; d++) {
    const sub = path.join(dir, 'usr/share/app', `module-${d}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < TEXT_FILES_PER_DIR; f++) {
      // A different window of the corpus per file: gzip's 32 KiB window sees no repeats across files.
      const start = Math.floor(random() * (corpus.length - TEXT_FILE_BYTES));
      await writeFile(path.join(sub, `file-${f}.txt`), corpus.subarray(start, start + TEXT_FILE_BYTES));
    }
  }
  const textFiles = TEXT_DIRS * TEXT_FILES_PER_DIR;
  return { bytes: RANDOM_FILES * RANDOM_FILE_BYTES + textFiles * TEXT_FILE_BYTES, files: RANDOM_FILES + textFiles };
}

/** `bytes` (rounded to whole 50 MB files) in the same proportions as the sample: half random, half
 * text, written file by file so that making it needs no more memory than one file. */
export async function makeLargeUpperdir(dir: string, bytes: number): Promise<SampleUpperdir> {
  const FILE_BYTES = 50 * MB;
  const random = seededRandom(0x2bd1a7e);
  const corpus = textCorpus(random);
  await mkdir(path.join(dir, 'data'), { recursive: true });
  const files = Math.max(2, Math.round(bytes / FILE_BYTES));
  for (let i = 0; i < files; i++) {
    let content: Buffer;
    if (i % 2 === 0) {
      content = randomBytes(FILE_BYTES);
    } else {
      const parts: Buffer[] = [];
      for (let size = 0; size < FILE_BYTES; size += TEXT_FILE_BYTES) {
        const start = Math.floor(random() * (corpus.length - TEXT_FILE_BYTES));
        parts.push(corpus.subarray(start, start + TEXT_FILE_BYTES));
      }
      content = Buffer.concat(parts).subarray(0, FILE_BYTES);
    }
    await writeFile(path.join(dir, 'data', `part-${String(i).padStart(3, '0')}`), content);
  }
  return { bytes: files * FILE_BYTES, files };
}

/** Indented lines of words from a fixed vocabulary: compresses about as well as source code (~3x). */
function textCorpus(random: () => number): Buffer {
  const letters = 'abcdefghijklmnopqrstuvwxyz_';
  const vocabulary = Array.from({ length: 512 }, () => {
    const length = 2 + Math.floor(random() * 9);
    return Array.from({ length }, () => letters[Math.floor(random() * letters.length)]).join('');
  });
  const lines: string[] = [];
  let size = 0;
  while (size < CORPUS_BYTES) {
    const indent = ' '.repeat(2 * Math.floor(random() * 5));
    const words = Array.from({ length: 3 + Math.floor(random() * 10) }, () => vocabulary[Math.floor(random() * vocabulary.length)]);
    const line = `${indent}${words.join(' ')};\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join(''));
}

